"""Fish (Shi et al. 2021), first order, on the LoRA parameters: inner steps on each domain, then a meta step.

Fish needs each domain's gradient at parameters already moved by the previous domains' inner steps, so its
gradients cannot come from one backward. It is driven by the trainer through :meth:`Fish.meta_step`, which
replaces the step's forward/backward/``optimizer.step()``::

    def domain_backward(k: int) -> Tensor:      # forward + backward of L_k on domain k's rows of this step's batch
        rows = batch["domain_ids"] == k          # (all micro-batches; each backward of L_k / grad_accum)
        logits = model(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows]).logits
        loss = per_domain_token_loss(logits, batch["labels"][rows], torch.zeros_like(...), 1)[0]
        accelerator.backward(loss)
        return loss.detach()

    metrics = algorithm.meta_step(domain_backward, step, optimizer=optimizer)   # no optimizer.step() afterwards
    scheduler.step()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm
from iga.algorithms.hparam_checks import check_int, check_number, check_optional_positive
from iga.algorithms.registry import register_algorithm
from iga.gradients.capture import DomainGradCapture


@dataclass
class FishHParams:
    """Fish options.

    Attributes:
        meta_lr: ε ∈ (0, 1] of the meta step ``θ ← θ + ε(θ̃ − θ)`` (DomainBed ``meta_lr``, default 0.5).
        seed: seed of the random domain order (re-derived from (seed, step): a resumed run draws the same orders).
        max_grad_norm: clip each inner step's gradient (None = off); the trainer passes its own clip value here.
    """

    meta_lr: float = 0.5
    seed: int = 0
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        check_number(self, "meta_lr", min_value=0, max_value=1, min_inclusive=False)
        check_int(self, "seed")
        check_optional_positive(self, "max_grad_norm")


def domain_order(num_domains: int, seed: int, step: int) -> list[int]:
    """The random order of the inner steps at optimizer step ``step`` (a permutation of ``0..K-1``)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))
    return torch.randperm(num_domains, generator=gen).tolist()


@register_algorithm("fish")
class Fish(Algorithm):
    """First-order Fish: ``θ̃ ← θ``; for each domain d in a random order, one inner optimizer step
    ``θ̃ ← opt(θ̃, ∇L_d(θ̃))``; then ``θ ← θ + ε(θ̃ − θ)``. To first order this ascends the inter-domain gradient
    inner product ``Σ_{i<j} g_iᵀg_j`` while descending the mean loss.

    The inner optimizer is the trainer's optimizer (so its learning rate, schedule and weight decay apply to the
    inner steps, and its state persists across steps, as DomainBed's inner Adam). With ``base="sgd"`` and no
    momentum the inner step is the paper's ``θ̃ ← θ̃ − α∇L_d(θ̃)``. Cost: K forward+backward passes per step, one
    per domain's rows (the same total tokens as ERM's one pass), plus one copy of the trainable parameters.

    The trainer must call :meth:`meta_step` (module docstring); :meth:`loss` is plain ERM and is not used by Fish.

    Deviations from DomainBed's ``Fish``: only the trainable (LoRA) parameters are cloned, not the whole network;
    the domain order is shuffled every step (the paper's Algorithm 1; DomainBed keeps the given order); the inner
    optimizer is the trainer's (AdamW by default, DomainBed: Adam with its own state); inner gradients are clipped
    when ``max_grad_norm`` is set.
    """

    capture_space = None
    trainer_call = "meta_step"
    clips_gradients = True
    hparams_cls = FishHParams

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        super().__init__(num_domains=num_domains, **hparams)
        self._optimizer: torch.optim.Optimizer | None = None

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        self._optimizer = base_optimizer
        return base_optimizer

    def meta_step(
        self,
        domain_backward: Callable[[int], Tensor | float],
        step: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, float]:
        """One Fish update at optimizer step ``step``.

        Args:
            domain_backward: ``domain_backward(k)`` runs forward and backward of ``L_k`` on domain k's rows of this
                step's batch at the current parameters (leaving ``∇L_k`` in ``.grad``) and returns ``L_k``.
            step: the 0-based optimizer step (seeds the domain order).
            optimizer: the optimizer that takes the inner steps; default: the one given to
                :meth:`build_optimizer` (pass the trainer's Accelerate-wrapped optimizer so that mixed-precision
                gradient scaling is honoured).

        Returns:
            ``{"loss": mean_k L_k, "loss/<k>": L_k, "meta_displacement": ‖θ̃ − θ‖}`` (losses before each inner step).
        """
        opt = optimizer if optimizer is not None else self._optimizer
        if opt is None:
            raise RuntimeError(
                "fish: build the optimizer with algorithm.build_optimizer(...) or pass optimizer="
            )
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        start = [p.detach().clone() for p in params]
        losses: dict[int, float] = {}
        for k in domain_order(self.num_domains, self.hparams.seed, step):
            opt.zero_grad(set_to_none=True)
            losses[k] = float(domain_backward(k))
            if self.hparams.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, self.hparams.max_grad_norm)
            opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            squares = [(p - p0).double().square().sum() for p, p0 in zip(params, start, strict=True)]
            displacement = float(torch.stack(squares).sum().sqrt())
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0.lerp_(p, self.hparams.meta_lr))
        metrics = {"loss": sum(losses.values()) / len(losses), "meta_displacement": displacement}
        metrics.update({f"loss/{k}": losses[k] for k in sorted(losses)})
        self.last_metrics = metrics
        return metrics
