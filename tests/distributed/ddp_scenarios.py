"""What the 2-process tests run, shared by the worker (``ddp_worker.py``, one copy per rank) and the
single-process references in the tests: one float64 model, per-rank batches, the optimizers, the steps.

Each rank's slice of a step's global batch holds complete domains with the same number of rows and supervised
tokens per domain, so "one process on the global batch" is exactly the rank average of per-rank domain means.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any

import torch

from iga.algorithms import get_algorithm
from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.testing import domain_major_batch, tiny_lora_llama

WORLD = 2
K = 3
STEPS = 2
LR = 0.1

#: scenario -> (algorithm, options, stats_scope of a factor-space wrapper, micro-batches per step)
SCENARIOS: dict[str, tuple[str, dict[str, Any], str, int]] = {
    "iga_global": ("iga", {"tau": 10.0, "stats_scope": "global"}, "global", 1),
    "iga_global_accum": ("iga", {"tau": 10.0, "stats_scope": "global"}, "global", 2),
    "iga_local": ("iga", {"tau": 10.0, "stats_scope": "local"}, "global", 1),
    # The mask variants of issue #17: the statistics come after the global reduction, whatever their space.
    "iga_row_global": ("iga", {"tau": 10.0, "stats_scope": "global", "mask_space": "row"}, "global", 1),
    "iga_subspace_sign_global": (
        "iga",
        {"tau": 10.0, "stats_scope": "global", "mask_space": "subspace", "mask_stat": "sign"},
        "global",
        1,
    ),
    "pcgrad": ("pcgrad", {}, "global", 1),
    "cagrad": ("cagrad", {}, "global", 1),
    "andmask": ("andmask", {"tau": 0.6}, "global", 1),
    # k small enough that the tanh is not saturated by the tiny variances (else it equals AND-mask here).
    "sandmask": ("sandmask", {"k": 1e-4}, "global", 1),
    "andmask_local": ("andmask", {"tau": 0.6}, "local", 1),
}


def make_model() -> torch.nn.Module:
    return tiny_lora_llama(num_layers=1, seed=0)


def rank_batch(step: int, rank: int) -> dict[str, torch.Tensor]:
    return domain_major_batch(num_domains=K, rows_per_domain=2, seq_len=10, seed=1000 * step + rank)


def global_batch(step: int) -> dict[str, torch.Tensor]:
    parts = [rank_batch(step, r) for r in range(WORLD)]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def micro_batches(batch: dict[str, torch.Tensor], count: int) -> list[dict[str, torch.Tensor]]:
    """Split a domain-major batch into ``count`` micro-batches that each hold every domain (row i of each)."""
    rows = batch["domain_ids"].numel()
    return [{k: v[torch.arange(m, rows, count)] for k, v in batch.items()} for m in range(count)]


def build(scenario: str, model: torch.nn.Module, lr: float = LR) -> tuple[Any, DomainGradCapture]:
    """(optimizer wrapping SGD(lr), its capture) for ``scenario``."""
    name, options, factor_scope, _ = SCENARIOS[scenario]
    algorithm = get_algorithm(name)(num_domains=K, **options)
    capture = DomainGradCapture(model, space=algorithm.capture_space)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, params, capture, lr=lr, base="sgd")
    if algorithm.capture_space == "factor":
        optimizer.stats_scope = factor_scope
    return optimizer, capture


def backward(
    model: torch.nn.Module,
    capture: DomainGradCapture,
    batch: dict[str, torch.Tensor],
    count: int = 1,
    no_sync: Callable[[], AbstractContextManager] = nullcontext,
) -> None:
    """Forward and backward of ``mean_k L_k`` over ``count`` accumulated micro-batches (each inside a fresh
    ``no_sync()`` context: DDP's ``model.no_sync`` under the workers)."""
    parts = micro_batches(batch, count)
    for i, part in enumerate(parts):
        with capture.domains(part["domain_ids"], num_domains=K, sync=i == count - 1), no_sync():
            out = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"])
            loss = per_domain_token_loss(out.logits, part["labels"], part["domain_ids"], K).mean()
            (loss / count).backward()


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@cache  # several tests compare against the same reference; callers must not modify it
def global_reference(scenario: str) -> dict[str, dict[str, torch.Tensor]]:
    """One process, the whole global batch per step (no accumulation): the large-batch semantics."""
    model = make_model()
    optimizer, capture = build(scenario, model)
    last = {}
    for step in range(STEPS):
        backward(model, capture, global_batch(step))
        optimizer.step()
        last = grads(model)
        optimizer.zero_grad()
    return {"params": trainable(model), "grads": last}


@cache
def local_reference(scenario: str) -> dict[str, dict[str, torch.Tensor]]:
    """One process: per step, each rank's own update computed alone (an optimizer + capture per rank, SGD with
    lr 0 so that only its gradient is taken), then the mean of the per-rank gradients applied with SGD."""
    model = make_model()
    per_rank = [build(scenario, model, lr=0.0) for _ in range(WORLD)]
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    mean: dict[str, torch.Tensor] = {}
    for step in range(STEPS):
        rank_grads = []
        for rank, (optimizer, capture) in enumerate(per_rank):
            backward(model, capture, rank_batch(step, rank))
            optimizer.step()
            rank_grads.append(grads(model))
            optimizer.zero_grad()
        mean = {n: sum(g[n] for g in rank_grads) / WORLD for n in params}
        with torch.no_grad():
            for n, p in params.items():
                p.sub_(LR * mean[n])
    return {"params": trainable(model), "grads": mean}


# ------------------------------------------------ IGATrainer (transformers.Trainer) on 2 ranks: test_ddp_hf_trainer.py
HF_SETS = 8  # one set per micro-batch: 2 steps × 2 micro-batches × 2 ranks use each set once (one epoch)
HF_GA = 2
HF_STEPS = 2
HF_LR = 0.5
HF_TAU = 3.0


def hf_dataset() -> list[dict[str, Any]]:
    """``HF_SETS`` isomer sets of K tokenized rows with ragged lengths (domains hold different token counts)."""
    gen = torch.Generator().manual_seed(7)
    rows = []
    for s in range(HF_SETS):
        for k in range(K):
            length = int(torch.randint(6, 11, (1,), generator=gen))
            ids = torch.randint(0, 64, (length,), generator=gen).tolist()
            rows.append(
                {"instance_id": f"set-{s}", "domain_id": k, "input_ids": ids, "labels": [-100] * 3 + ids[3:]}
            )
    return rows


def _hf_recorder() -> Any:
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        """The trainable weights at the start and, after every optimizer step, the gradient it applied (IGA's
        written, rank-averaged gradient: the Trainer zeroes it only after this event) and the weights."""

        def __init__(self) -> None:
            self.init: dict[str, torch.Tensor] = {}
            self.steps: list[dict[str, dict[str, torch.Tensor]]] = []

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.init = trainable(model)

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.steps.append({"grads": grads(model), "params": trainable(model)})

    return StepRecorder()


def hf_trainer(out: Any, *, stats_scope: str, grad_accum: int = HF_GA, max_steps: int = HF_STEPS,
               collator: Any = None) -> tuple[Any, Any]:  # fmt: skip
    """(IGATrainer on ``make_model()`` with plain SGD (update = lr × applied gradient), no clipping, its recorder)."""
    from transformers import TrainingArguments

    from iga import IGAConfig
    from iga.integrations import DomainBatchCollator, IGATrainer

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=K, gradient_accumulation_steps=grad_accum,
        max_steps=max_steps, learning_rate=HF_LR, lr_scheduler_type="constant", optim="sgd", max_grad_norm=0.0,
        seed=0, use_cpu=True, report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
        remove_unused_columns=False,
    )  # fmt: skip
    recorder = _hf_recorder()
    trainer = IGATrainer(
        model=make_model(),
        args=args,
        train_dataset=hf_dataset(),
        data_collator=collator if collator is not None else DomainBatchCollator(pad_token_id=0),
        iga_config=IGAConfig(tau=HF_TAU, stats_scope=stats_scope),
        callbacks=[recorder],
    )
    return trainer, recorder
