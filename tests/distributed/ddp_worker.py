"""One rank of the 2-process tests, launched by ``torchrun --standalone --nproc_per_node 2``.

Usage: ``ddp_worker.py optimizers OUT`` (every scenario of ``ddp_scenarios.SCENARIOS``: Accelerate-prepared DDP
model, backward under ``no_sync``, the optimizer wrapper averages) or ``ddp_worker.py trainer OUT DATA BASE``
(``iga.training.loop.train`` for a few algorithms) or ``ddp_worker.py hf_trainer OUT`` (``IGATrainer`` through
``transformers.Trainer``'s own DDP, once per ``stats_scope``). Each rank saves what it ended with to
``OUT/<scenario>.rank<r>.pt``; the tests compare the files.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch


def _accelerator():
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    # A plain Accelerator() under torchrun on a CPU machine silently gives independent processes.
    assert accelerator.num_processes == 2, f"expected 2 processes, got {accelerator.num_processes}"
    return accelerator


def run_optimizers(out: Path) -> None:
    import ddp_scenarios as sc

    accelerator = _accelerator()
    rank = accelerator.process_index
    for scenario, (_, _, _, count) in sc.SCENARIOS.items():
        model = sc.make_model()
        optimizer, capture = sc.build(scenario, model)
        ddp_model, ddp_optimizer = accelerator.prepare(model, optimizer)
        last = {}
        for step in range(sc.STEPS):
            sc.backward(
                ddp_model, capture, sc.rank_batch(step, rank), count, partial(accelerator.no_sync, ddp_model)
            )
            ddp_optimizer.step()
            last = sc.grads(model)
            ddp_optimizer.zero_grad()
        payload = {
            "params": sc.trainable(model),
            "grads": last,
            "world": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
        }
        torch.save(payload, out / f"{scenario}.rank{rank}.pt")
        capture.detach()


TRAINER_RUNS = {
    "iga_local": {"algorithm": "iga", "algorithm_options": {"tau": 5.0}},
    "iga_global_accum": {
        "algorithm": "iga",
        "algorithm_options": {"tau": 5.0, "stats_scope": "global"},
        "grad_accum": 2,
    },
    "pcgrad": {"algorithm": "pcgrad"},
    "erm_accum": {"algorithm": "erm", "grad_accum": 2},
    # Loss-side methods: DDP's own all-reduce; penalties and GroupDRO's weights are computed per rank.
    "irm": {"algorithm": "irm", "algorithm_options": {"anneal_steps": 0}},
    "fishr": {"algorithm": "fishr", "algorithm_options": {"anneal_steps": 0}},
    "iga_koyama": {"algorithm": "iga_koyama"},
    "vrex": {"algorithm": "vrex"},
    "groupdro": {"algorithm": "groupdro"},
    "fish": {"algorithm": "fish"},
}


def run_trainer(out: Path, data: str, base: str) -> None:
    from iga.config import TrainConfig
    from iga.training.loop import train
    from iga.training.setup import load_student

    for name, options in TRAINER_RUNS.items():
        cfg = TrainConfig(
            data_dir=data,
            out_dir=str(out / name),
            base_dir=base,
            student="micro",
            steps=2,
            sets_per_batch=2,
            lr=1e-2,
            warmup_steps=0,
            log_every=1,
            checkpoint_every=1,
            cpu=True,
            lora={"r": 4, "alpha": 8, "init": "gaussian"},
            **options,
        )
        torch.manual_seed(cfg.seed)  # as prepare_run does: the LoRA initialisation the run starts from
        init = _lora(load_student(cfg)[0])
        result = train(cfg, progress=False)
        rank = _accelerator().process_index
        payload = {"init": init, "params": _lora(result["model"]), "summary": result["summary"]}
        torch.save(payload, out / f"{name}.rank{rank}.pt")


def run_hf_trainer(out: Path) -> None:
    import ddp_scenarios as sc

    from iga.integrations import DomainBatchCollator

    class RecordingCollator(DomainBatchCollator):
        """Notes the isomer sets of every batch this rank collates (the test checks Accelerate's sharding)."""

        def __init__(self) -> None:
            super().__init__(pad_token_id=0)
            self.batches: list[list[str]] = []

        def __call__(self, examples):
            self.batches.append([str(ex["instance_id"]) for ex in examples])
            return super().__call__(examples)

    for scope in ("local", "global"):
        collator = RecordingCollator()
        trainer, recorder = sc.hf_trainer(out / scope, stats_scope=scope, collator=collator)
        assert trainer.args.world_size == 2, f"expected 2 processes, got {trainer.args.world_size}"
        trainer.train()
        payload = {
            "init": recorder.init,
            "steps": recorder.steps,
            "batches": collator.batches,
            "distributed_type": str(trainer.accelerator.distributed_type),
            "model_class": type(trainer.model_wrapped).__name__,
            "log": [h for h in trainer.state.log_history if "loss" in h],
        }
        torch.save(payload, out / f"hf_{scope}.rank{trainer.args.process_index}.pt")


def _lora(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    if mode == "optimizers":
        run_optimizers(out_dir)
    elif mode == "trainer":
        run_trainer(out_dir, sys.argv[3], sys.argv[4])
    elif mode == "hf_trainer":
        run_hf_trainer(out_dir)
    else:
        raise SystemExit(f"unknown mode {mode!r}; expected 'optimizers', 'trainer' or 'hf_trainer'")
    # Leave together and tear gloo down before the interpreter exits: without it a rank can abort at exit
    # ("terminate called without an active exception") when the machine is loaded, failing a run that succeeded.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
