"""IRMv1 (Arjovsky et al. 2019) on a language model: the penalty on a dummy scale of the logits.

The penalty needs the logits, which :meth:`Algorithm.combine_losses` does not see. IRM therefore declares
``trainer_call = "loss_from_logits"``: a trainer calls :meth:`IRM.loss_from_logits` instead of
:meth:`Algorithm.loss`::

    logits = model(input_ids=..., attention_mask=...).logits
    losses = per_domain_token_loss(logits, labels, domain_ids, K)
    if algorithm.trainer_call == "loss_from_logits":
        loss = algorithm.loss_from_logits(losses, logits, labels, domain_ids, step)
    else:
        loss = algorithm.loss(losses, step)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from iga.algorithms.anneal import AnnealedPenalty, AnnealedPenaltyHParams
from iga.algorithms.hparam_checks import check_choice
from iga.algorithms.registry import register_algorithm
from iga.gradients.losses import IGNORE_INDEX

IRM_ESTIMATORS = ("halves", "full")


@dataclass
class IRMHParams(AnnealedPenaltyHParams):
    """IRM options (DomainBed defaults: ``irm_lambda`` = 100, ``irm_penalty_anneal_iters`` = 500).

    Attributes:
        estimator: ``"halves"`` — DomainBed's unbiased estimate ``∇_w L_k^(even) · ∇_w L_k^(odd)`` from the
            even- and odd-numbered rows of each domain (needs ≥ 2 rows per domain per micro-batch); ``"full"`` —
            the biased ``(∇_w L_k)²`` of the paper's equation.
    """

    penalty: float = 100.0
    anneal_steps: int = 500
    estimator: str = "halves"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "estimator", IRM_ESTIMATORS)


def _row_rank_within_domain(domain_ids: Tensor, num_domains: int) -> Tensor:
    one_hot = F.one_hot(domain_ids, num_domains)
    return one_hot.cumsum(0).gather(1, domain_ids[:, None]).squeeze(1) - 1


def irm_penalty(
    logits: Tensor,
    labels: Tensor,
    domain_ids: Tensor,
    num_domains: int,
    *,
    estimator: str = "halves",
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """The (K,) IRMv1 penalties ``(∂L_k(w·logits)/∂w |_{w=1})²`` (``"full"``) or the product of that derivative on
    the even- and odd-numbered rows of domain k (``"halves"``), differentiable in ``logits``.

    ``L_k`` is the mean next-token cross-entropy over domain k's supervised tokens (labels as in
    :func:`~iga.gradients.per_domain_token_loss`: unshifted, ``-100`` where unsupervised). The derivative has the
    closed form ``mean_t (E_{p_t}[z_t] − z_{t,y_t})`` with ``p_t = softmax(z_t)``, so no ``create_graph`` backward
    is needed; the cost is one extra softmax over the logits.

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 2, 3)                  # uniform predictions: ∂L/∂w = 0
        >>> labels = torch.tensor([[-100, 1], [-100, 2]])
        >>> irm_penalty(logits, labels, torch.tensor([0, 1]), 2, estimator="full")
        tensor([0., 0.])
    """
    if estimator not in IRM_ESTIMATORS:
        raise ValueError(f"estimator must be one of {IRM_ESTIMATORS}, got {estimator!r}")
    if logits.dim() != 3 or labels.shape != logits.shape[:2] or domain_ids.shape != logits.shape[:1]:
        raise ValueError(
            "irm_penalty needs logits (B, T, V), labels (B, T) and domain_ids (B,); got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)}, {tuple(domain_ids.shape)}"
        )
    ids = domain_ids.long().to(logits.device)
    if int(ids.min()) < 0 or int(ids.max()) >= num_domains:
        raise ValueError(f"domain_ids must hold values in 0..{num_domains - 1}")
    z = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))
    targets = labels[:, 1:].to(logits.device)
    supervised = targets != ignore_index
    z_target = z.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    per_token = (torch.softmax(z, dim=-1) * z).sum(-1) - z_target
    row_sum = (per_token * supervised).sum(1)
    row_count = supervised.sum(1).to(z.dtype)
    if estimator == "full":
        groups, n_groups = ids, num_domains
    else:
        groups, n_groups = 2 * ids + _row_rank_within_domain(ids, num_domains) % 2, 2 * num_domains
    group_sum = torch.zeros(n_groups, dtype=z.dtype, device=z.device).index_add(0, groups, row_sum)
    group_count = torch.zeros(n_groups, dtype=z.dtype, device=z.device).index_add(0, groups, row_count)
    empty = torch.nonzero(group_count == 0).flatten().tolist()
    if empty:
        where = sorted({g if estimator == "full" else g // 2 for g in empty})
        need = "a supervised token" if estimator == "full" else "2 rows, each half with a supervised token,"
        raise ValueError(
            f"irm: domain(s) {where} lack {need} in this micro-batch; use more isomer sets per micro-batch"
            + (" or estimator='full'" if estimator == "halves" else "")
        )
    grad_w = group_sum / group_count
    if estimator == "full":
        return grad_w.square()
    halves = grad_w.view(num_domains, 2)
    return halves[:, 0] * halves[:, 1]


@register_algorithm("irm")
class IRM(AnnealedPenalty):
    """IRMv1: ``L = mean_k L_k + w_t · mean_k P_k`` with ``P_k`` from :func:`irm_penalty` (dummy scale on the logits).

    ``w_t`` is 1 for the first ``anneal_steps`` optimizer steps and ``penalty`` afterwards; the optimizer state is
    cleared at the switch (``reset_optimizer``), as DomainBed's ``IRM``.

    The trainer must call :meth:`loss_from_logits` (see the module docstring); :meth:`loss` refuses, because the
    penalty cannot be computed from the per-domain losses alone.

    Deviations from DomainBed's ``IRM``: the "samples" of the even/odd split are the rows (sequences) of a domain and
    the loss of each half is its mean token cross-entropy; the derivative is taken in closed form instead of by
    ``autograd.grad(create_graph=True)`` on a scalar (same value and same gradient; pinned by the tests). The
    original IRM code divides the loss by the weight when it exceeds 1; DomainBed does not, nor do we.
    """

    trainer_call = "loss_from_logits"
    hparams_cls = IRMHParams

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        raise RuntimeError(
            "irm needs the logits: call algorithm.loss_from_logits(per_domain_losses, logits, labels, domain_ids, "
            "step) instead of algorithm.loss(...)"
        )

    def loss_from_logits(
        self, per_domain_losses: Tensor, logits: Tensor, labels: Tensor, domain_ids: Tensor, step: int
    ) -> Tensor:
        """The IRMv1 objective of one (micro-)batch at optimizer step ``step``."""
        if per_domain_losses.shape != (self.num_domains,):
            raise ValueError(
                f"per_domain_losses must have shape ({self.num_domains},), got {tuple(per_domain_losses.shape)}"
            )
        weight = self.penalty_weight(step)
        penalty = irm_penalty(logits, labels, domain_ids, self.num_domains, estimator=self.hparams.estimator)
        self.last_metrics = {"penalty": penalty.mean().detach(), "penalty_weight": weight}
        return per_domain_losses.mean() + weight * penalty.mean()
