"""Fishr (Rame et al. 2022): match the within-domain variances of per-sample gradients across domains.

Fishr is a penalty on gradient *variances*, so its own gradient needs second order through per-sample gradients.
As DomainBed restricts it to the classifier head, we restrict it to the LoRA factors of the last ``modules``
LoRA-adapted modules of the model (default: 1, e.g. the last block's ``down_proj``): their per-row gradients
are exact and differentiable from one extra ``autograd.grad(Σ_i ℓ_i, z, create_graph=True)`` over the LoRA
branch outputs (see :mod:`iga.gradients.per_sample`), and the penalty's gradient flows into every LoRA factor
below through the activations, as DomainBed's flows into the featurizer.

Fishr needs the logits and labels (per-row losses): it declares ``trainer_call = "loss_from_logits"``, so a
trainer calls :meth:`Fishr.loss_from_logits` instead of :meth:`Algorithm.loss`, exactly as for IRM (see
:mod:`iga.algorithms.irm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from iga.algorithms.anneal import AnnealedPenalty, AnnealedPenaltyHParams
from iga.algorithms.hparam_checks import check_choice, check_int, check_number
from iga.algorithms.registry import register_algorithm
from iga.algorithms.second_order import crosses_attention, use_double_backward_attention
from iga.gradients.capture import DomainGradCapture
from iga.gradients.layers import discover_layers
from iga.gradients.per_sample import LoRARecorder, per_row_losses

EMA_CORRECTIONS = ("domainbed", "bias")


@dataclass
class FishrHParams(AnnealedPenaltyHParams):
    """Fishr options (DomainBed defaults: ``lambda`` = 1000, ``penalty_anneal_iters`` = 1500, ``ema`` = 0.95).

    Attributes:
        ema: EMA factor β ∈ [0, 1) of the per-domain variances over calls (0 = off).
        ema_correction: ``"domainbed"`` — use ``EMA/(1 − β)`` (DomainBed's ``MovingAverage``: the gradient through
            the current variance has weight 1 whatever β, so λ keeps DomainBed's scale); ``"bias"`` — Adam-style
            ``EMA/(1 − βᵗ)``.
        modules: how many LoRA-adapted modules, counted back from the model's last one, Fishr matches.
    """

    penalty: float = 1000.0
    anneal_steps: int = 1500
    ema: float = 0.95
    ema_correction: str = "domainbed"
    modules: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self, "ema", min_value=0, max_value=1, max_inclusive=False)
        check_choice(self, "ema_correction", EMA_CORRECTIONS)
        check_int(self, "modules", min_value=1)


def domain_variances(per_sample_grads: Tensor, domain_ids: Tensor, num_domains: int) -> Tensor:
    """(K, P) population variance over the rows of each domain of (N, P) per-row gradients (≥ 2 rows per domain)."""
    ids = domain_ids.long().to(per_sample_grads.device)
    out = []
    for k in range(num_domains):
        rows = per_sample_grads[ids == k]
        if rows.shape[0] < 2:
            raise ValueError(
                f"fishr: domain {k} has {rows.shape[0]} row(s) in this micro-batch; a within-domain variance needs "
                ">= 2 rows per domain (use more isomer sets per micro-batch)"
            )
        out.append((rows - rows.mean(0)).square().mean(0))
    return torch.stack(out)


def fishr_penalty(variances: Tensor) -> Tensor:
    """``mean_k mean_j (v_kj − v̄_j)²`` of (K, P) variances (DomainBed's ``l2_between_dicts`` averages coordinates).

    Example:
        >>> import torch
        >>> fishr_penalty(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))
        tensor(0.5000)
    """
    return (variances - variances.mean(0)).square().mean()


def ema_update(
    previous: Tensor | None, current: Tensor, beta: float, updates: int, correction: str
) -> tuple[Tensor, Tensor]:
    """``(stored, used)``: the new EMA ``β·previous + (1 − β)·current`` (detached, ``previous = 0`` at first) and the
    corrected value that enters the penalty (differentiable in ``current``): ``EMA/(1 − β)`` (``"domainbed"``) or
    ``EMA/(1 − β^updates)`` (``"bias"``), ``updates`` counting this one.

    Example:
        >>> import torch
        >>> stored, used = ema_update(torch.tensor([2.0]), torch.tensor([4.0]), 0.5, 2, "domainbed")
        >>> stored, used
        (tensor([3.]), tensor([6.]))
    """
    if correction not in EMA_CORRECTIONS:
        raise ValueError(f"correction must be one of {EMA_CORRECTIONS}, got {correction!r}")
    base = torch.zeros_like(current) if previous is None else previous.to(current)
    ema = beta * base + (1 - beta) * current
    divisor = 1 - beta if correction == "domainbed" else 1 - beta**updates
    return ema.detach(), ema / divisor


@register_algorithm("fishr")
class Fishr(AnnealedPenalty):
    """Gradient-variance matching: ``L = mean_k L_k + w_t · mean_k mean_j (ṽ_kj − mean_k ṽ_kj)²`` where ``ṽ_k`` is
    the EMA of the variance over domain k's rows of the per-row gradients of the selected LoRA factors.

    ``w_t`` is 0 for the first ``anneal_steps`` optimizer steps (the EMA still updates) and ``penalty`` afterwards;
    the optimizer state is cleared at the switch (``reset_optimizer``), as DomainBed's ``Fishr``. While ``w_t = 0``
    the per-row gradients are computed without ``create_graph`` (first order only, cheaper).

    Cost: one extra backward from the loss to the selected modules' LoRA outputs (short when they are the last
    ones), per-row factor gradients (N·r·(m+n) numbers per module), and, once the penalty is on, a backward through
    that extra backward. Needs ≥ 2 rows per domain in each micro-batch. When the selected modules sit at or below an
    attention layer, :meth:`build_optimizer` switches a Hugging Face model to eager attention (fused kernels have
    no second derivative; see :mod:`iga.algorithms.second_order`).

    Deviations from DomainBed's ``Fishr``: the per-sample gradients are those of the LoRA factors of the last
    ``modules`` adapted modules (DomainBed: the classifier head, via BackPACK); a "sample" is a row (sequence),
    with the row loss of :func:`~iga.gradients.per_sample.per_row_losses`; the EMA advances once per call (per
    micro-batch with gradient accumulation); the objective uses the mean of the per-domain losses (DomainBed: CE
    pooled over the batch, identical for equal domain sizes).
    """

    trainer_call = "loss_from_logits"
    hparams_cls = FishrHParams
    warmup_weight = 0.0

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        super().__init__(num_domains=num_domains, **hparams)
        self.recorder: LoRARecorder | None = None
        self._ema: Tensor | None = None
        self._ema_updates = 0

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        lora = [layer for layer in discover_layers(model) if layer.is_lora]
        if not lora:
            raise ValueError("fishr: no trainable LoRA layers found in the model")
        if self.recorder is not None:
            self.recorder.detach()
        selected = lora[-self.hparams.modules :]
        if crosses_attention(model, [layer.name for layer in selected]):
            use_double_backward_attention(model, self.name)
        self.recorder = LoRARecorder(selected)
        return super().wrap_optimizer(base_optimizer, model, capture)

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        raise RuntimeError(
            "fishr needs the logits: call algorithm.loss_from_logits(per_domain_losses, logits, labels, domain_ids, "
            "step) instead of algorithm.loss(...)"
        )

    def gradient_variances(
        self, logits: Tensor, labels: Tensor, domain_ids: Tensor, *, create_graph: bool = True
    ) -> Tensor:
        """(K, P) within-domain variances of the per-row gradients of the selected LoRA factors (no EMA)."""
        if self.recorder is None:
            raise RuntimeError("fishr: build the optimizer with algorithm.build_optimizer(model, ...) first")
        rows = per_row_losses(logits, labels, domain_ids, self.num_domains)
        grads = self.recorder.per_sample_grads(rows, create_graph=create_graph)
        return domain_variances(grads, domain_ids, self.num_domains)

    def _smoothed(self, variances: Tensor) -> Tensor:
        if self.hparams.ema == 0:
            return variances
        if self._ema is not None and self._ema.shape != variances.shape:
            raise ValueError(
                f"fishr: EMA state has shape {tuple(self._ema.shape)}, the variances {tuple(variances.shape)}"
            )
        self._ema_updates += 1
        stored, used = ema_update(
            self._ema, variances, self.hparams.ema, self._ema_updates, self.hparams.ema_correction
        )
        self._ema = stored
        return used

    def loss_from_logits(
        self, per_domain_losses: Tensor, logits: Tensor, labels: Tensor, domain_ids: Tensor, step: int
    ) -> Tensor:
        """The Fishr objective of one (micro-)batch at optimizer step ``step``; consumes the recorded forward."""
        if per_domain_losses.shape != (self.num_domains,):
            raise ValueError(
                f"per_domain_losses must have shape ({self.num_domains},), got {tuple(per_domain_losses.shape)}"
            )
        weight = self.penalty_weight(step)
        variances = self.gradient_variances(logits, labels, domain_ids, create_graph=weight > 0)
        penalty = fishr_penalty(self._smoothed(variances))
        self.last_metrics = {"penalty": penalty.detach(), "penalty_weight": weight}
        return per_domain_losses.mean() + weight * penalty

    def state_dict(self) -> dict[str, Any]:
        return {
            "ema": None if self._ema is None else self._ema.detach().cpu().clone(),
            "ema_updates": self._ema_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"ema", "ema_updates"}:
            raise ValueError(f"fishr: state must have the keys 'ema', 'ema_updates', got {sorted(state)}")
        ema = state["ema"]
        if ema is not None and (
            not isinstance(ema, Tensor) or ema.dim() != 2 or ema.shape[0] != self.num_domains
        ):
            raise ValueError(f"fishr: state 'ema' must be None or a ({self.num_domains}, P) tensor")
        self._ema = None if ema is None else ema.clone()
        self._ema_updates = int(state["ema_updates"])
