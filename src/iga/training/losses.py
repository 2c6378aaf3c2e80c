"""The per-domain objective ``L_k`` of every training run: ``sft`` (cross-entropy), ``kd`` (logit distillation) or
``mix``, chosen by ``TrainConfig.loss``.

Every algorithm (ERM, IGA, baselines) receives these (K,) losses. ``sft`` is
:func:`~iga.gradients.losses.per_domain_token_loss` itself; ``kd`` is the forward KL to a teacher's token
distributions (:func:`iga.teachers.kd.per_domain_kl`), pooled the same way. This is a torch module (the CLI imports
it lazily).
"""

from __future__ import annotations

from torch import Tensor

from iga.gradients.losses import IGNORE_INDEX, per_domain_token_loss
from iga.teachers.kd import check_teacher_logits, per_domain_kl

LOSSES = ("sft", "kd", "mix")


def _check_options(loss: str, temperature: float, alpha: float) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown value {loss!r}; allowed: {', '.join(LOSSES)}")
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha!r}")


def per_domain_distillation_loss(
    student_logits: Tensor,
    labels: Tensor,
    domain_ids: Tensor,
    num_domains: int,
    *,
    teacher_logits: Tensor | None = None,
    loss: str = "sft",
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """``L_k`` for each domain, shape (K,): ``sft`` (cross-entropy), ``kd`` (forward KL) or ``mix``.

    * ``sft``: :func:`~iga.gradients.losses.per_domain_token_loss` itself (``teacher_logits`` ignored).
    * ``kd``: :func:`~iga.teachers.kd.per_domain_kl`, ``T² · Σ_v p_T(v)(log p_T(v) − log q_T(v))`` averaged over
      domain k's supervised tokens.
    * ``mix``: ``alpha · sft + (1 − alpha) · kd``.

    Gradients reach the student only (the teacher's logits are detached).

    Raises:
        ValueError: unknown ``loss``; ``temperature ≤ 0``; ``alpha`` outside [0, 1]; missing teacher logits for
            ``kd``/``mix``; teacher and student vocabularies of different size (same tokenizer required); the
            shape and domain errors of ``per_domain_token_loss``.

    Example (identical logits: KL is 0, so ``mix`` is half the cross-entropy):
        >>> import torch
        >>> logits = torch.zeros(2, 3, 5)
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 4]])
        >>> per_domain_distillation_loss(logits, labels, torch.tensor([0, 1]), 2, teacher_logits=logits,
        ...                              loss="mix", alpha=0.5)
        tensor([0.8047, 0.8047])
    """
    _check_options(loss, temperature, alpha)
    if loss == "sft":
        return per_domain_token_loss(
            student_logits, labels, domain_ids, num_domains, ignore_index=ignore_index
        )
    teacher = check_teacher_logits(student_logits, teacher_logits, loss)
    kd = per_domain_kl(
        student_logits,
        teacher,
        labels,
        domain_ids,
        num_domains,
        temperature=temperature,
        ignore_index=ignore_index,
    )
    if loss == "kd":
        return kd
    ce = per_domain_token_loss(student_logits, labels, domain_ids, num_domains, ignore_index=ignore_index)
    return alpha * ce + (1.0 - alpha) * kd
