"""SAND-mask (Shahtalebi et al. 2021): a smooth AND-mask, scaled by the inverse cross-domain variance."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iga.algorithms.andmask import rescaled_masked_mean, sign_agreement
from iga.algorithms.base import Algorithm
from iga.algorithms.gradient_wrapper import FactorGradOptimizer
from iga.algorithms.hparam_checks import check_number, check_optional_positive
from iga.algorithms.registry import register_algorithm
from iga.distributed import check_stats_scope
from iga.gradients.capture import DomainGradCapture


@dataclass
class SANDMaskHParams:
    """SAND-mask options.

    Attributes:
        tau: agreement threshold τ ∈ [0, 1). τ = 1 (DomainBed's default) makes the mask identically 0, because the
            agreement never exceeds 1; the default here is 0.5, the middle of DomainBed's random range U(0, 1).
        k: steepness k > 0 of the tanh (DomainBed default 10).
        max_grad_norm: clip after the rewrite (None = off); the trainer passes its own clip value here.
        stats_scope: under DDP, ``"global"`` averages the per-domain factor gradients across ranks before
            combining them (exact large-batch semantics; K × LoRA-sized traffic), ``"local"`` combines per rank
            and averages the result.
    """

    tau: float = 0.5
    k: float = 10.0
    max_grad_norm: float | None = None
    stats_scope: str = "global"

    def __post_init__(self) -> None:
        check_stats_scope(self.stats_scope, "sandmask.stats_scope")
        check_number(self, "tau", min_value=0, max_value=1, max_inclusive=False)
        check_number(self, "k", min_value=0, min_inclusive=False)
        check_optional_positive(self, "max_grad_norm")


def sand_mask(domain_grads: Tensor, tau: float, k: float) -> Tensor:
    """``max(0, tanh(k·(|mean_k sign(g_k)| − τ) / σ²))`` with ``σ²`` the unbiased variance over domains.

    Where ``σ² = 0`` the tanh argument is ±∞ (mask 1 or 0) and 0 where the agreement equals τ.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 1.0, -2.0], [3.0, -1.0, -1.0], [0.5, 2.0, -4.0]])
        >>> sand_mask(g, tau=0.5, k=1.0)                  # column 1: only 2 of 3 signs agree
        tensor([0.2782, 0.0000, 0.2111])
    """
    variance = domain_grads.var(0, correction=1)
    z = k * (sign_agreement(domain_grads) - tau) / variance
    return torch.nan_to_num(torch.tanh(z), nan=0.0).clamp(min=0)


class SANDMaskOptimizer(FactorGradOptimizer):
    """Writes :func:`rescaled_masked_mean` of the SAND-mask into every captured parameter's ``.grad``."""

    method = "sandmask"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, capture: DomainGradCapture, hparams: SANDMaskHParams
    ) -> None:
        super().__init__(
            base_optimizer, capture, max_grad_norm=hparams.max_grad_norm, stats_scope=hparams.stats_scope
        )
        self.hparams = hparams

    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        out, mask_sums, numel = {}, [], 0
        for param, g in domain_grads.items():
            mask = sand_mask(g, self.hparams.tau, self.hparams.k)
            out[param] = rescaled_masked_mean(g, mask)
            mask_sums.append(mask.sum())
            numel += mask.numel()
        # One host sync for the metric, not one per parameter.
        self._metrics["mask_mean"] = float(torch.stack(mask_sums).sum()) / max(numel, 1)
        return out


@register_algorithm("sandmask")
class SANDMask(Algorithm):
    """SAND-mask on the LoRA factors: ``m = max(0, tanh(k·(|mean_k sign g_k| − τ)/σ²))``, update
    ``m ⊙ ḡ / mean(m)`` per tensor (``σ²`` = unbiased variance over domains, γ = 1).

    Gradient-side: per-domain LoRA-factor gradients come from one backward (``capture_space = "factor"``).

    Deviations from DomainBed's ``SANDMask``: default τ = 0.5 instead of 1.0 (τ = 1 zeroes the mask, so the default
    run never updates; τ ≥ 1 is refused); where the tanh argument is 0/0 the mask is 0 instead of 1e-17; per-domain
    gradients from the one-backward capture instead of K ``autograd.grad`` calls; applied to the trainable LoRA
    factors (other trainable parameters keep the ERM gradient); clipping after the rewrite.
    """

    capture_space = "factor"
    clips_gradients = True
    hparams_cls = SANDMaskHParams

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        return SANDMaskOptimizer(base_optimizer, capture, self.hparams)
