"""The distillation training loop: one screen, top to bottom.

Per step: the batch of ``sets_per_batch`` complete isomer sets (a pure function of seed and step) is split into
``grad_accum`` micro-batches of whole sets; each micro-batch runs one forward and one backward inside the
capture's domain context; then the optimizer (the algorithm's wrapper around AdamW) steps once. Meta-learning
methods (Fish) take their own inner steps through ``meta_step`` instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from iga.config import TrainConfig
from iga.training.checkpoint import load_checkpoint, save_checkpoint
from iga.training.logger import RunLogger
from iga.training.outputs import ADAPTER_DIR, CHECKPOINT_NAME, TRAIN_SUMMARY_NAME
from iga.training.progress import StepProgress
from iga.training.run import prepare_run
from iga.utils.io import atomic_write_json

__all__ = ["train"]


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    import torch

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = prepare_run(cfg)
    acc, main = run.accelerator, run.accelerator.is_main_process
    start, ckpt = 0, out / CHECKPOINT_NAME
    earlier_seconds: list[float] = []  # timings of the earlier attempts of a resumed run
    if resume and ckpt.exists():
        payload = load_checkpoint(
            ckpt, model=acc.unwrap_model(run.model), optimizer=run.optimizer, scheduler=run.scheduler
        )
        run.algorithm.load_state_dict(payload["extra"].get("algorithm", {}))
        start = payload["step"]
        earlier_seconds = list(payload["extra"].get("step_seconds", []))
    logger = RunLogger(out, resume_step=start or None) if main else None
    bar = StepProgress(total=cfg.steps, start=start, enabled=progress and main, description=cfg.algorithm)
    step_seconds: list[float] = []
    run.model.train()
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        batches = run.micro_batches(step)
        grad_norm = None
        if run.algorithm.trainer_call == "meta_step":  # Fish: inner steps per domain, then interpolation
            meta = run.algorithm.meta_step(run.domain_backward(batches), step, optimizer=run.optimizer)
            domain_losses = torch.tensor(
                [meta.get(f"loss/{k}", meta["loss"]) for k in range(run.num_domains)]
            )
        else:
            domain_losses = sum(
                run.forward_backward(b, step, sync=i == len(batches) - 1) for i, b in enumerate(batches)
            ) / len(batches)
            if cfg.max_grad_norm is not None and not run.algorithm.clips_gradients:
                grad_norm = acc.clip_grad_norm_(run.trainable, cfg.max_grad_norm)
            run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        step_seconds.append(time.perf_counter() - t0)
        bar.update(step + 1, loss=float(domain_losses.mean()))
        if logger is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            supervised = sum(int((b["labels"] != -100).sum()) for b in batches)
            logger.log(
                step + 1,
                {
                    "loss": domain_losses.mean(),
                    "lr": run.scheduler.get_last_lr()[0],
                    "step_seconds": step_seconds[-1],
                    "tokens_per_second": supervised / step_seconds[-1],
                    **{f"loss/{d}": domain_losses[k] for k, d in enumerate(cfg.train_domains)},
                    **({"grad_norm": grad_norm} if grad_norm is not None else {}),
                    **run.metrics(),
                },
            )
        if main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            save_checkpoint(
                ckpt,
                model=acc.unwrap_model(run.model),
                optimizer=run.optimizer,
                scheduler=run.scheduler,
                step=step + 1,
                extra={
                    "algorithm": run.algorithm.state_dict(),
                    "step_seconds": earlier_seconds + step_seconds,
                },
            )
    bar.close()
    if logger is not None:
        logger.close()
    if run.capture is not None:
        run.capture.detach()
    acc.wait_for_everyone()
    model = acc.unwrap_model(run.model)
    summary = {
        "steps": cfg.steps,
        "resumed_from": start,
        "steps_this_run": len(step_seconds),
        # Over every step of the run, the earlier attempts' included (the first step of each attempt warms up).
        "train_seconds": round(sum(earlier_seconds) + sum(step_seconds), 3),
        "step_time_s": _median(earlier_seconds[1:] + step_seconds[1:] or earlier_seconds + step_seconds),
        "num_isomer_sets": len(run.sets),
        "trainable_parameters": sum(p.numel() for p in run.trainable),
        "num_processes": acc.num_processes,
        "algorithm_hparams": _hparams(run.algorithm),
    }
    if main:
        model.save_pretrained(out / ADAPTER_DIR)
        atomic_write_json(out / TRAIN_SUMMARY_NAME, summary)
    return {"model": model, "tokenizer": run.tokenizer, "summary": summary, "manifest": run.manifest}


def _hparams(algorithm: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        k: v for k, v in asdict(algorithm.hparams).items() if isinstance(v, str | int | float | bool | None)
    }


def _median(xs: list[float]) -> float | None:
    return round(sorted(xs)[len(xs) // 2], 4) if xs else None
