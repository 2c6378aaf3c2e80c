"""Koyama & Yamaguchi's inter-environment gradient-variance penalty (arXiv 2008.01883), DomainBed's ``IGA``.

Name clash: DomainBed calls this method ``IGA``; in this project ``iga`` is Invariant Gradient Alignment (the
multiplicative conflict mask of docs/method.md §1) and this penalty is ``iga_koyama``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm
from iga.algorithms.hparam_checks import check_number
from iga.algorithms.registry import register_algorithm
from iga.algorithms.second_order import use_double_backward_attention
from iga.gradients.capture import DomainGradCapture


@dataclass
class IGAKoyamaHParams:
    """Options of the gradient-variance penalty.

    Attributes:
        penalty: weight λ ≥ 0 of ``Σ_k ‖g_k − ḡ‖²`` (DomainBed ``penalty``, default 1000).
    """

    penalty: float = 1000.0

    def __post_init__(self) -> None:
        check_number(self, "penalty", min_value=0)


def gradient_variance_penalty(per_domain_losses: Tensor, params: list[nn.Parameter]) -> Tensor:
    """``Σ_k ‖g_k − ḡ‖²`` over ``params`` with ``g_k = ∂L_k/∂θ``, differentiable (double backprop).

    K ``autograd.grad(L_k, params, create_graph=True)`` calls; ``ḡ`` is the mean of the ``g_k``. Because
    ``Σ_k (g_k − ḡ) = 0``, treating ``ḡ`` as a constant (DomainBed's extra ``autograd.grad`` of the mean loss,
    without ``create_graph``) gives the same gradient, so it is not computed separately.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor(2.0))
        >>> losses = torch.stack([w**2, 3 * w])          # g = (2w, 3) = (4, 3), ḡ = 3.5
        >>> gradient_variance_penalty(losses, [w])
        tensor(0.5000, grad_fn=<AddBackward0>)
    """
    if not params:
        raise ValueError("gradient_variance_penalty needs at least one parameter")
    if not per_domain_losses.requires_grad:
        raise ValueError(
            "iga_koyama: the per-domain losses have no autograd graph (computed under torch.no_grad()?); the "
            "penalty differentiates their gradients"
        )
    k_dom = per_domain_losses.shape[0]
    per_domain = []
    for k in range(k_dom):
        grads = torch.autograd.grad(per_domain_losses[k], params, create_graph=True, allow_unused=True)
        per_domain.append(
            [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
        )
    total = per_domain_losses.new_zeros(())
    for i in range(len(params)):
        stacked = torch.stack([grads[i] for grads in per_domain])
        total = total + (stacked - stacked.mean(0)).square().sum()
    return total


@register_algorithm("iga_koyama")
class IGAKoyama(Algorithm):
    """Inter-environment gradient alignment (Koyama & Yamaguchi): ``L = mean_k L_k + λ · Σ_k ‖g_k − ḡ‖²`` over the
    trainable (LoRA) parameters, by double backprop.

    Loss-side: :meth:`combine_losses` differentiates each ``L_k`` with ``create_graph=True`` and the trainer's one
    ``backward`` then flows through those gradients. Cost: K extra backward passes that keep their graphs, and a
    backward through them — roughly ``(1 + 2K)×`` ERM's backward time and K graphs of activations' gradients in
    memory. This is the one method that loops over domains with autograd, because it needs second order. Fused
    attention kernels have no second derivative, so :meth:`build_optimizer` switches a Hugging Face model to
    ``attn_implementation="eager"`` (with a warning).

    Deviations from DomainBed's ``IGA``: one forward of the domain-major batch instead of one per domain (same
    losses); ``ḡ`` is not obtained by a separate ``autograd.grad`` of the mean loss (same gradient, see
    :func:`gradient_variance_penalty`); the penalty runs over the trainable parameters only, i.e. the LoRA factors
    (DomainBed: every network parameter). With gradient accumulation each micro-batch's penalty uses that
    micro-batch's gradients (a sum of per-micro-batch penalties, not the penalty of the summed gradients).
    """

    hparams_cls = IGAKoyamaHParams

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        super().__init__(num_domains=num_domains, **hparams)
        self._params: list[nn.Parameter] = []

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        # The penalty differentiates exactly what the optimizer trains.
        self._params = [
            p for group in base_optimizer.param_groups for p in group["params"] if p.requires_grad
        ]
        use_double_backward_attention(model, self.name)
        return base_optimizer

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        if not self._params:
            raise RuntimeError(
                "iga_koyama: build the optimizer with algorithm.build_optimizer(model, params, ...) first; the "
                "penalty needs the trainable parameters"
            )
        mean = per_domain_losses.mean()
        if self.hparams.penalty == 0:
            return mean
        penalty = gradient_variance_penalty(per_domain_losses, self._params)
        self.last_metrics = {"penalty": penalty.detach()}
        return mean + self.hparams.penalty * penalty
