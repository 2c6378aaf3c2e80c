"""PCGrad (Yu et al. 2020): project each domain's gradient off the others' when they conflict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm
from iga.algorithms.gradient_wrapper import FactorGradOptimizer, combine_domains, gramian
from iga.algorithms.hparam_checks import check_choice, check_int, check_optional_positive
from iga.algorithms.registry import register_algorithm
from iga.distributed import check_stats_scope
from iga.gradients.capture import DomainGradCapture

PCGRAD_REDUCTIONS = ("mean", "sum")


@dataclass
class PCGradHParams:
    """PCGrad options.

    Attributes:
        reduction: ``"mean"`` (default) — the update is ``(1/K) Σ_i g_i^PC``, on ERM's scale, so the learning rate
            is comparable to ERM's; ``"sum"`` — ``Σ_i g_i^PC`` as LibMTL and TorchJD (K× larger steps).
        seed: seed of the random projection order (re-derived from (seed, step), so a resumed run draws the same
            orders).
        max_grad_norm: clip after the rewrite (None = off); the trainer passes its own clip value here.
        stats_scope: under DDP, ``"global"`` averages the per-domain factor gradients across ranks before
            combining them (exact large-batch semantics; K × LoRA-sized traffic), ``"local"`` combines per rank
            and averages the result.
    """

    reduction: str = "mean"
    seed: int = 0
    max_grad_norm: float | None = None
    stats_scope: str = "global"

    def __post_init__(self) -> None:
        check_stats_scope(self.stats_scope, "pcgrad.stats_scope")
        check_choice(self, "reduction", PCGRAD_REDUCTIONS)
        check_int(self, "seed")
        check_optional_positive(self, "max_grad_norm")


def pcgrad_weights(gram: Tensor, orders: Sequence[Sequence[int]], reduction: str = "mean") -> Tensor:
    """Coefficients ``w`` (K,) with ``Σ_k w_k g_k = reduce_i g_i^PC``, computed from the Gramian alone.

    ``g_i^PC`` starts at ``g_i``; for each ``j ≠ i`` in ``orders[i]``: if ``⟨g_i^PC, g_j⟩ < 0`` then
    ``g_i^PC ← g_i^PC − ⟨g_i^PC, g_j⟩/‖g_j‖² · g_j``. Each ``g_i^PC`` stays a combination ``Σ_k C_ik g_k``, so
    ``⟨g_i^PC, g_j⟩ = Σ_k C_ik A_kj`` needs only ``A = GGᵀ`` (TorchJD's ``PCGradWeighting`` idea).

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])      # conflicting: ⟨g_1, g_2⟩ = −1
        >>> w = pcgrad_weights((g @ g.T).double(), [[0, 1], [0, 1]])
        >>> (w.float() @ g).tolist()                          # mean of (0.5, 0.5) and (0, 1)
        [0.25, 0.75]
    """
    if reduction not in PCGRAD_REDUCTIONS:
        raise ValueError(f"reduction must be one of {PCGRAD_REDUCTIONS}, got {reduction!r}")
    a = gram.double().tolist()
    k_dom = len(a)
    coeffs = [[1.0 if i == k else 0.0 for k in range(k_dom)] for i in range(k_dom)]
    for i in range(k_dom):
        for j in orders[i]:
            if j == i:
                continue
            dot = sum(coeffs[i][k] * a[k][j] for k in range(k_dom))
            if dot < 0:
                coeffs[i][j] -= dot / a[j][j]
    total = torch.tensor(coeffs, dtype=torch.float64).sum(0)
    return total / k_dom if reduction == "mean" else total


def projection_orders(num_domains: int, seed: int, step: int) -> list[list[int]]:
    """For each domain i, a random order of the domains (seeded by ``(seed, step)``), as in LibMTL."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))
    return [torch.randperm(num_domains, generator=gen).tolist() for _ in range(num_domains)]


class PCGradOptimizer(FactorGradOptimizer):
    """Writes the PCGrad combination of the per-domain gradients (one Gramian over all captured parameters)."""

    method = "pcgrad"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, capture: DomainGradCapture, hparams: PCGradHParams
    ) -> None:
        super().__init__(
            base_optimizer, capture, max_grad_norm=hparams.max_grad_norm, stats_scope=hparams.stats_scope
        )
        self.hparams = hparams

    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        gram = gramian(domain_grads.values())
        orders = projection_orders(gram.shape[0], self.hparams.seed, self.step_count)
        weights = pcgrad_weights(gram, orders, self.hparams.reduction)
        self._metrics["conflicting_pairs"] = float((gram < 0).sum()) / 2
        self._metrics.update({f"weight/{k}": float(w) for k, w in enumerate(weights.tolist())})
        return combine_domains(domain_grads, weights)


@register_algorithm("pcgrad")
class PCGrad(Algorithm):
    """Gradient surgery: every domain gradient is projected onto the normal plane of each gradient it conflicts
    with (negative inner product), in a random order per domain; the update is the mean of the projections.

    Gradient-side (``capture_space = "factor"``): the K per-domain LoRA-factor gradients come from one backward,
    and the projections act on the whole concatenated LoRA gradient vector (LibMTL's "shared parameters").

    Deviations from LibMTL's ``PCGrad``: ``reduction="mean"`` by default (LibMTL sums, K× the step; ``"sum"`` is
    available); the inner loop skips ``j = i`` (the paper's Algorithm 1; LibMTL also tests a domain against itself,
    which only matters once it has been projected); the order comes from a seeded generator per step instead of
    Python's global ``random``; no ``1e-8`` in the denominator (a conflict implies ``‖g_j‖ > 0``).
    """

    capture_space = "factor"
    clips_gradients = True
    hparams_cls = PCGradHParams

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        return PCGradOptimizer(base_optimizer, capture, self.hparams)
