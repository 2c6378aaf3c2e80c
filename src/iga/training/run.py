"""A training run's moving parts, assembled once: accelerator, data, student, algorithm, capture, optimizer.

:mod:`iga.training.loop` drives a :class:`Run` step by step; this module holds what each step calls, so the loop
itself stays one screen long.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iga.config import TrainConfig
from iga.distributed import check_distributed_type, check_launch
from iga.training.data import IsomerCollator, IsomerSet, sets_for_step
from iga.training.setup import load_student, load_teacher, load_train_sets

if TYPE_CHECKING:
    from iga.algorithms.base import Algorithm


def check_record_words(tokenizer: Any, records: list, source: str) -> None:
    """A word-level student cannot read a word outside its vocabulary: fail before the first step, naming it."""
    from iga.models.prompting import PromptFormat
    from iga.models.word_tokenizer import check_words, is_word_level

    if not is_word_level(tokenizer):
        return
    fmt = PromptFormat()
    for rec in records:
        check_words(tokenizer, fmt.text(rec), source=f"{source}: record {rec.get('id')!r}")


def build_algorithm(cfg: TrainConfig, num_domains: int) -> Algorithm:
    """The configured algorithm; a method that clips its own gradients (``clips_gradients``) gets the trainer's
    clip value as its ``max_grad_norm``."""
    from iga.algorithms import get_algorithm

    cls = get_algorithm(cfg.algorithm)
    options = dict(cfg.algorithm_options)
    if cls.clips_gradients:
        options.setdefault("max_grad_norm", cfg.max_grad_norm)
    return cls(num_domains=num_domains, **options)


def with_logic_rows(batch: dict[str, Any], num_domains: int) -> dict[str, Any]:
    """``batch`` with its rows appended again, labelled by ``logic_labels`` and in domains K..2K-1."""
    import torch

    return {
        "input_ids": torch.cat([batch["input_ids"], batch["input_ids"]]),
        "attention_mask": torch.cat([batch["attention_mask"], batch["attention_mask"]]),
        "labels": torch.cat([batch["labels"], batch["logic_labels"]]),
        "domain_ids": torch.cat([batch["domain_ids"], batch["domain_ids"] + num_domains]),
    }


@dataclass
class Run:
    cfg: TrainConfig
    accelerator: Any
    sets: list[IsomerSet]
    manifest: dict
    algorithm: Algorithm
    model: Any
    tokenizer: Any
    collate: IsomerCollator
    capture: Any
    teacher: Any
    trainable: list
    optimizer: Any
    scheduler: Any

    @property
    def num_domains(self) -> int:
        return len(self.cfg.train_domains)

    def micro_batches(self, step: int) -> list[dict[str, Any]]:
        """This process's slice of step ``step``'s global batch, split into ``grad_accum`` micro-batches."""
        cfg, acc = self.cfg, self.accelerator
        global_ids = sets_for_step(len(self.sets), cfg.sets_per_batch * acc.num_processes, step, cfg.seed)
        mine = global_ids[
            acc.process_index * cfg.sets_per_batch : (acc.process_index + 1) * cfg.sets_per_batch
        ]
        per_micro = cfg.sets_per_batch // cfg.grad_accum
        chunks = [
            [self.sets[i] for i in mine[m * per_micro : (m + 1) * per_micro]] for m in range(cfg.grad_accum)
        ]
        return [{k: v.to(acc.device) for k, v in self.collate(chunk).items()} for chunk in chunks]

    def domain_losses(self, batch: dict[str, Any], num_domains: int | None = None) -> tuple[Any, Any]:
        """(logits, per-domain losses (K,)) of one micro-batch: SFT cross-entropy or distillation."""
        from iga.training.losses import per_domain_distillation_loss

        cfg = self.cfg
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        teacher_logits = self.teacher(batch["input_ids"], batch["attention_mask"]) if self.teacher else None
        losses = per_domain_distillation_loss(
            logits,
            batch["labels"],
            batch["domain_ids"],
            num_domains or self.num_domains,
            loss=cfg.loss,
            teacher_logits=teacher_logits,
            temperature=cfg.kd_temperature,
            alpha=cfg.kd_alpha,
        )
        return logits, losses

    def forward_backward(self, batch: dict[str, Any], step: int, *, sync: bool) -> Any:
        """One micro-batch: forward and backward of the algorithm's objective inside the capture's domain context.

        Under DDP, ``.grad`` is all-reduced only at the last micro-batch, and never for gradient-rewriting methods
        (a capture): their optimizer overwrites ``.grad`` and averages what it writes itself.
        """
        num_domains = self.num_domains
        if self.algorithm.statistics_tokens == "logic":
            # The rows again with logic-only labels, as domains K..2K-1 (Algorithm.statistics_tokens); the
            # objective below is then the mean of all 2K losses, and only the first K are returned.
            batch, num_domains = with_logic_rows(batch, self.num_domains), 2 * self.num_domains
        ctx = (
            self.capture.domains(batch["domain_ids"], num_domains=num_domains, sync=sync)
            if self.capture is not None
            else nullcontext()
        )
        ddp_sync = nullcontext() if sync and self.capture is None else self.accelerator.no_sync(self.model)
        with ctx, ddp_sync, self.accelerator.autocast():
            logits, losses = self.domain_losses(batch, num_domains)
            if num_domains != self.num_domains:  # statistics_tokens="logic": the mean of all 2K losses
                objective = losses.mean()
            elif (
                self.algorithm.trainer_call == "loss_from_logits"
            ):  # IRM, Fishr: penalties that need the logits
                objective = self.algorithm.loss_from_logits(
                    losses, logits, batch["labels"], batch["domain_ids"], step
                )
            else:
                objective = self.algorithm.loss(losses, step)
            self.accelerator.backward(objective / self.cfg.grad_accum)
        return losses[: self.num_domains].detach().float().cpu()

    def domain_backward(self, batches: list[dict[str, Any]]) -> Callable[[int], float]:
        """For meta-learning methods (Fish): ``fn(k)`` back-propagates ``L_k`` alone over every micro-batch."""

        def backward_domain(k: int) -> float:
            total = 0.0
            for batch in batches:
                with self.accelerator.autocast():
                    loss_k = self.domain_losses(batch)[1][k] / self.cfg.grad_accum
                    self.accelerator.backward(loss_k)
                total += float(loss_k.detach())
            return total

        return backward_domain

    def metrics(self) -> dict[str, Any]:
        """Whatever the optimizer wrapper and the algorithm report about their last step (masks, weights…)."""
        from iga.algorithms.optimizer_wrapper import OptimizerWrapper

        opt = getattr(self.optimizer, "optimizer", self.optimizer)  # unwrap Accelerate's AcceleratedOptimizer
        wrapper = opt.last_metrics if isinstance(opt, OptimizerWrapper) else {}
        return {**wrapper, **self.algorithm.last_metrics}


def prepare_run(cfg: TrainConfig) -> Run:
    import torch
    from accelerate import Accelerator

    from iga.algorithms import get_algorithm
    from iga.gradients import DomainGradCapture
    from iga.models.chat import make_prompt_format
    from iga.training.schedule import build_scheduler

    if cfg.sets_per_batch % cfg.grad_accum:
        raise ValueError(
            f"sets_per_batch={cfg.sets_per_batch} must be divisible by grad_accum={cfg.grad_accum}"
        )
    if cfg.mixed_precision == "fp16" and get_algorithm(cfg.algorithm).capture_space is not None:
        # The fp16 GradScaler unscales .grad before the wrapper rewrites it, so clipping and the overflow check
        # would act on the wrong gradients. Checked before the Accelerator exists (its state is process-global).
        raise ValueError(
            f"mixed_precision='fp16' is not supported with {cfg.algorithm!r}, which rewrites the "
            "gradients inside optimizer.step(); use 'bf16' or 'no'"
        )
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision)
    check_launch(accelerator.num_processes, cpu=cfg.cpu)
    sets, manifest = load_train_sets(cfg)
    algorithm = build_algorithm(cfg, len(cfg.train_domains))
    check_distributed_type(
        accelerator.distributed_type, algorithm=cfg.algorithm, capture_space=algorithm.capture_space
    )
    model, tokenizer = load_student(cfg)
    check_record_words(
        tokenizer, [m for s in sets for m in s.members], f"{cfg.data_dir}/{cfg.train_split}.jsonl"
    )
    capture = DomainGradCapture(model, space=algorithm.capture_space) if algorithm.capture_space else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, trainable, capture, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(
        optimizer,
        warmup_steps=cfg.warmup_steps,
        total_steps=cfg.steps,
        schedule=cfg.schedule,
        floor=cfg.lr_floor,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return Run(
        cfg=cfg,
        accelerator=accelerator,
        sets=sets,
        manifest=manifest,
        algorithm=algorithm,
        model=model,
        tokenizer=tokenizer,
        collate=IsomerCollator(
            tokenizer,
            max_length=cfg.max_length,
            cot_field=cfg.cot_field,
            fmt=make_prompt_format(cfg.prompt_format, tokenizer),
            logic_labels=algorithm.statistics_tokens == "logic",
        ),
        capture=capture,
        teacher=load_teacher(cfg, accelerator.device),
        trainable=trainable,
        optimizer=optimizer,
        scheduler=scheduler,
    )
