"""V-REx (Krueger et al. 2021): the mean loss plus λ times the variance of the per-domain losses."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from iga.algorithms.anneal import AnnealedPenalty, AnnealedPenaltyHParams
from iga.algorithms.registry import register_algorithm


@dataclass
class VRExHParams(AnnealedPenaltyHParams):
    """V-REx options (DomainBed defaults: ``vrex_lambda`` = 10, ``vrex_penalty_anneal_iters`` = 500)."""

    penalty: float = 10.0
    anneal_steps: int = 500


def vrex_objective(per_domain_losses: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    """``(L, Var)`` with ``L = mean_k L_k + weight · Var_k(L_k)`` and the population variance
    ``Var = mean_k (L_k − mean L)²``.

    Example:
        >>> import torch
        >>> vrex_objective(torch.tensor([1.0, 3.0]), weight=2.0)
        (tensor(4.), tensor(1.))
    """
    mean = per_domain_losses.mean()
    variance = (per_domain_losses - mean).square().mean()
    return mean + weight * variance, variance


@register_algorithm("vrex")
class VREx(AnnealedPenalty):
    """Risk extrapolation: ``L = mean_k L_k + w_t · Var_k(L_k)`` (population variance over the K domains).

    ``w_t`` is 1 for the first ``anneal_steps`` optimizer steps and ``penalty`` afterwards; the optimizer state is
    cleared at the switch (``reset_optimizer``), as DomainBed's ``VREx``.

    Deviations from DomainBed: none in the objective. DomainBed logs the last domain's loss as ``nll``; here
    ``last_metrics`` holds the mean loss, the variance and the weight.

    Example:
        >>> import torch
        >>> VREx(num_domains=2, anneal_steps=0, penalty=3.0).loss(torch.tensor([1.0, 3.0]), step=0)
        tensor(5.)
    """

    hparams_cls = VRExHParams

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        weight = self.penalty_weight(step)
        loss, variance = vrex_objective(per_domain_losses, weight)
        self.last_metrics = {"penalty": variance.detach(), "penalty_weight": weight}
        return loss
