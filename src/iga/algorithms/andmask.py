"""AND-mask (Parascandolo et al. 2021): keep only the coordinates whose gradient sign most domains agree on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm
from iga.algorithms.gradient_wrapper import FactorGradOptimizer
from iga.algorithms.hparam_checks import check_number, check_optional_positive
from iga.algorithms.registry import register_algorithm
from iga.distributed import check_stats_scope
from iga.gradients.capture import DomainGradCapture


@dataclass
class ANDMaskHParams:
    """AND-mask options.

    Attributes:
        tau: agreement threshold τ ∈ [0, 1]: keep coordinate j when ``|mean_k sign(g_kj)| ≥ τ`` (1 = every domain
            has the same sign; 0 = keep everything, i.e. ERM). DomainBed default 1.
        max_grad_norm: clip after the rewrite (None = off); the trainer passes its own clip value here.
        stats_scope: under DDP, ``"global"`` averages the per-domain factor gradients across ranks before
            combining them (exact large-batch semantics; K × LoRA-sized traffic), ``"local"`` combines per rank
            and averages the result.
    """

    tau: float = 1.0
    max_grad_norm: float | None = None
    stats_scope: str = "global"

    def __post_init__(self) -> None:
        check_stats_scope(self.stats_scope, "andmask.stats_scope")
        check_number(self, "tau", min_value=0, max_value=1)
        check_optional_positive(self, "max_grad_norm")


def sign_agreement(domain_grads: Tensor) -> Tensor:
    """``|mean_k sign(g_k)|`` elementwise (``sign(0) = 0``), from (K, ...) per-domain gradients."""
    return torch.sign(domain_grads).mean(0).abs()


def rescaled_masked_mean(domain_grads: Tensor, mask: Tensor, eps: float = 1e-10) -> Tensor:
    """``mask ⊙ mean_k g_k / (mean(mask) + eps)``: DomainBed's per-tensor rescaling of AND-/SAND-mask updates."""
    return mask * domain_grads.mean(0) / (mask.mean() + eps)


def and_mask(domain_grads: Tensor, tau: float) -> Tensor:
    """The 0/1 mask ``1[|mean_k sign(g_k)| ≥ τ]`` of (K, ...) per-domain gradients.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 1.0, -2.0], [3.0, -1.0, -1.0], [0.5, 2.0, -4.0]])
        >>> and_mask(g, tau=1.0)
        tensor([1., 0., 1.])
    """
    return (sign_agreement(domain_grads) >= tau).to(domain_grads.dtype)


class ANDMaskOptimizer(FactorGradOptimizer):
    """Writes :func:`rescaled_masked_mean` of the AND-mask into every captured parameter's ``.grad``."""

    method = "andmask"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, capture: DomainGradCapture, hparams: ANDMaskHParams
    ) -> None:
        super().__init__(
            base_optimizer, capture, max_grad_norm=hparams.max_grad_norm, stats_scope=hparams.stats_scope
        )
        self.hparams = hparams

    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        out, kept, numel = {}, [], 0
        for param, g in domain_grads.items():
            mask = and_mask(g, self.hparams.tau)
            out[param] = rescaled_masked_mean(g, mask)
            kept.append(mask.sum())
            numel += mask.numel()
        # One host sync for the metric, not one per parameter.
        self._metrics["mask_mean"] = float(torch.stack(kept).sum()) / max(numel, 1)
        return out


@register_algorithm("andmask")
class ANDMask(Algorithm):
    """AND-mask on the LoRA factors: ``m = 1[|mean_k sign(g_k)| ≥ τ]``, update ``m ⊙ ḡ / mean(m)`` per tensor.

    Gradient-side: per-domain LoRA-factor gradients come from one backward (``capture_space = "factor"``).

    Deviations from DomainBed's ``ANDMask``: per-domain gradients from the one-backward capture instead of K
    ``autograd.grad`` calls (same numbers); applied to the trainable LoRA factors (and plain trainable Linear
    layers), while other trainable parameters keep the ERM gradient; clipping after the rewrite (DomainBed does not
    clip).
    """

    capture_space = "factor"
    clips_gradients = True
    hparams_cls = ANDMaskHParams

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        return ANDMaskOptimizer(base_optimizer, capture, self.hparams)
