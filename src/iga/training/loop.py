"""The distillation training loop: one screen, top to bottom.

Per step: the batch of ``sets_per_batch`` complete isomer sets (a pure function of seed and step) is split into
``grad_accum`` micro-batches of whole sets; each micro-batch runs one forward and one backward inside the
capture's domain context; then the optimizer (the algorithm's wrapper around AdamW) steps once.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

from iga.config import TrainConfig
from iga.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from iga.training.data import IsomerCollator, sets_for_step
from iga.training.logger import RunLogger
from iga.training.progress import StepProgress
from iga.training.setup import load_student, load_teacher, load_train_sets
from iga.utils.io import atomic_write_json


def build_algorithm(cfg: TrainConfig, num_domains: int) -> Any:
    """The configured algorithm; a method that clips after its own gradient rewrite gets the trainer's clip."""
    from iga.algorithms import get_algorithm

    cls = get_algorithm(cfg.algorithm)
    options = dict(cfg.algorithm_options)
    if "max_grad_norm" in {f.name for f in fields(cls.hparams_cls)}:
        options.setdefault("max_grad_norm", cfg.max_grad_norm)
    return cls(num_domains=num_domains, **options)


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator

    from iga.gradients import DomainGradCapture
    from iga.teachers.kd import per_domain_distillation_loss
    from iga.training.schedule import build_scheduler

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision)
    sets, manifest = load_train_sets(cfg)
    world, rank = accelerator.num_processes, accelerator.process_index
    num_domains = len(cfg.train_domains)
    if cfg.sets_per_batch % cfg.grad_accum:
        raise ValueError(f"sets_per_batch={cfg.sets_per_batch} must be divisible by grad_accum={cfg.grad_accum}")
    algorithm = build_algorithm(cfg, num_domains)
    model, tokenizer = load_student(cfg)
    collate = IsomerCollator(tokenizer, max_length=cfg.max_length, cot_field=cfg.cot_field)
    teacher = load_teacher(cfg, accelerator.device)
    capture = DomainGradCapture(model, space=algorithm.capture_space) if algorithm.capture_space else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, trainable, capture, lr=cfg.lr, weight_decay=cfg.weight_decay)
    clips_itself = "max_grad_norm" in {f.name for f in fields(algorithm.hparams_cls)}
    scheduler = build_scheduler(optimizer, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, schedule=cfg.schedule)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    start, ckpt = 0, out / CHECKPOINT_NAME
    if resume and ckpt.exists():
        payload = load_checkpoint(ckpt, model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler)
        algorithm.load_state_dict(payload["extra"].get("algorithm", {}))
        start = payload["step"]
    main = accelerator.is_main_process
    logger = RunLogger(out, resume_step=start if start else None) if main else None
    model.train()
    timings = {"train_seconds": 0.0, "step_seconds": []}
    bar = StepProgress(total=cfg.steps, start=start, enabled=progress and accelerator.is_main_process,
                       description=f"{cfg.algorithm}")
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        # Each process takes its own slice of the global batch (sets_per_batch sets per process).
        global_ids = sets_for_step(len(sets), cfg.sets_per_batch * world, step, cfg.seed)
        batch_sets = [sets[i] for i in global_ids[rank * cfg.sets_per_batch:(rank + 1) * cfg.sets_per_batch]]
        per_micro = cfg.sets_per_batch // cfg.grad_accum
        domain_loss_sum = torch.zeros(num_domains)
        for m in range(cfg.grad_accum):
            batch = {k: v.to(accelerator.device) for k, v in collate(batch_sets[m * per_micro:(m + 1) * per_micro]).items()}
            sync = m == cfg.grad_accum - 1
            ctx = capture.domains(batch["domain_ids"], num_domains=num_domains, sync=sync) if capture else nullcontext()
            with ctx, accelerator.autocast():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                losses = per_domain_distillation_loss(
                    logits, batch["labels"], batch["domain_ids"], num_domains, loss=cfg.loss,
                    teacher_logits=teacher(batch["input_ids"], batch["attention_mask"]) if teacher else None,
                    temperature=cfg.kd_temperature, alpha=cfg.kd_alpha)
                loss = algorithm.loss(losses, step) / cfg.grad_accum
                accelerator.backward(loss)
            domain_loss_sum += losses.detach().float().cpu() / cfg.grad_accum
        if cfg.max_grad_norm is not None and not clips_itself:
            grad_norm = accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
        else:
            grad_norm = None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        timings["train_seconds"] += dt
        timings["step_seconds"].append(dt)
        bar.update(step + 1, loss=float(domain_loss_sum.mean()))
        if logger is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            metrics = {"loss": domain_loss_sum.mean(), "lr": scheduler.get_last_lr()[0], "step_seconds": dt,
                       "tokens_per_second": int((batch["labels"] != -100).sum()) * cfg.grad_accum / dt}
            metrics.update({f"loss/{d}": domain_loss_sum[k] for k, d in enumerate(cfg.train_domains)})
            if grad_norm is not None:
                metrics["grad_norm"] = grad_norm
            metrics.update(getattr(optimizer, "last_metrics", None) or getattr(
                getattr(optimizer, "optimizer", None), "last_metrics", None) or {})
            logger.log(step + 1, metrics)
        if main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            save_checkpoint(ckpt, model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler,
                            step=step + 1, extra={"algorithm": algorithm.state_dict()})
    bar.close()
    if logger is not None:
        logger.close()
    if capture is not None:
        capture.detach()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if main:
        unwrapped.save_pretrained(out / "adapter")
    steps_done = len(timings["step_seconds"])
    summary = {
        "steps": cfg.steps, "resumed_from": start, "steps_this_run": steps_done,
        "train_seconds": round(timings["train_seconds"], 3),
        "step_time_s": _median(timings["step_seconds"][1:] or timings["step_seconds"]),
        "num_isomer_sets": len(sets), "trainable_parameters": sum(p.numel() for p in trainable),
        "num_processes": world,
    }
    if main:
        atomic_write_json(out / "train_summary.json", summary)
    return {"model": unwrapped, "tokenizer": tokenizer, "summary": summary, "manifest": manifest}


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[len(s) // 2], 4)

