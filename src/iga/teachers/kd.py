"""Logit distillation: per-domain forward KL to a teacher's token distributions (teacher in memory).

The KL keeps the pooling of :func:`iga.gradients.losses.per_domain_token_loss` so that every algorithm (ERM, IGA,
baselines) sees the same ``L_k``: the mean over domain k's supervised (shifted) tokens of a per-token loss. With ``p_T = softmax(teacher / T)`` and ``q_T = softmax(student / T)`` the per-token distillation loss is the
forward KL ``T² · Σ_v p_T(v) (log p_T(v) − log q_T(v))``; the ``T²`` keeps its gradient on the scale of the
cross-entropy's as T changes (Hinton et al., 2015). Tokens of different rows never interact, so the per-domain
gradient hooks of :mod:`iga.gradients` stay exact. The run's objective (``sft`` | ``kd`` | ``mix``), which mixes
this KL with the cross-entropy, is :func:`iga.training.losses.per_domain_distillation_loss`.

This is a torch module (the CLI imports it lazily).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from iga.gradients.losses import IGNORE_INDEX, check_domain_batch, domain_mean


def check_teacher_logits(student_logits: Tensor, teacher_logits: Tensor | None, loss: str) -> Tensor:
    """``teacher_logits``, checked against the student's: present (for ``loss``), (batch, seq, vocab), same shape."""
    if teacher_logits is None:
        raise ValueError(
            f"teacher_logits: required for loss={loss!r} (only loss='sft' trains without a teacher)"
        )
    if teacher_logits.dim() != 3 or student_logits.dim() != 3:
        raise ValueError(
            f"logits must have shape (batch, seq, vocab); got student {tuple(student_logits.shape)}, "
            f"teacher {tuple(teacher_logits.shape)}"
        )
    if teacher_logits.shape[-1] != student_logits.shape[-1]:
        raise ValueError(
            f"teacher_logits: vocabulary size {teacher_logits.shape[-1]} differs from the student's "
            f"{student_logits.shape[-1]}: same tokenizer required (logit distillation compares the two models token by "
            "token over one shared vocabulary)"
        )
    if teacher_logits.shape[:2] != student_logits.shape[:2]:
        raise ValueError(
            f"teacher_logits: shape {tuple(teacher_logits.shape)} does not match the student's "
            f"{tuple(student_logits.shape)} in (batch, seq); run the teacher on the same input_ids"
        )
    return teacher_logits


def per_domain_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    domain_ids: Tensor,
    num_domains: int,
    *,
    temperature: float = 2.0,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Per-domain mean of ``T² · KL(p_T ‖ q_T)`` over the supervised tokens, shape (K,).

    Position t of the logits predicts ``labels[:, t + 1]`` (HF shift), exactly as in ``per_domain_token_loss``;
    the teacher's logits are detached. Computed in at least fp32. Raises the errors listed in
    :func:`iga.training.losses.per_domain_distillation_loss`.

    Example (a student distilled from itself costs nothing):
        >>> import torch
        >>> logits = torch.randn(2, 3, 5)
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 4]])
        >>> per_domain_kl(logits, logits, labels, torch.tensor([0, 1]), 2).abs().max() < 1e-6
        tensor(True)
    """
    teacher_logits = check_teacher_logits(student_logits, teacher_logits, "kd")
    check_domain_batch(student_logits, labels, domain_ids, num_domains)
    bsz, seq, _ = student_logits.shape
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    shift_labels = labels[:, 1:].to(student_logits.device)
    supervised = shift_labels != ignore_index
    rows = torch.arange(bsz, device=student_logits.device).unsqueeze(1).expand(bsz, seq - 1)[supervised]
    # Only supervised positions pay for the two (N, V) softmaxes: prompts and padding are most of a batch.
    log_q = torch.log_softmax(student_logits[:, :-1][supervised].to(dtype) / temperature, dim=-1)
    teacher = teacher_logits.detach()[:, :-1].to(student_logits.device)
    log_p = torch.log_softmax(teacher[supervised].to(dtype) / temperature, dim=-1)
    p = log_p.exp()
    # 0 · log 0 = 0: a token the teacher rules out (logit −inf) contributes nothing, not NaN.
    token_kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros((), dtype=dtype, device=p.device)).sum(-1)
    ids = domain_ids.long().to(student_logits.device)[rows]
    return temperature**2 * domain_mean(
        token_kl, torch.ones_like(token_kl), ids, num_domains, ignore_index=ignore_index
    )


class TeacherLogits:
    """A frozen teacher in memory that returns its logits for a batch, without building a graph.

    The teacher is put in eval mode (no dropout) and its parameters stop requiring gradients; inputs are moved to
    the teacher's device and the logits come back on the device of ``input_ids``, so the trainer can keep the
    teacher elsewhere (e.g. another GPU) without special cases. ``model`` is any HF causal LM (its forward takes
    ``input_ids``, ``attention_mask``, ``use_cache`` and returns ``.logits``).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)

    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Teacher logits (B, T, V) for the batch, computed under ``torch.no_grad()``."""
        device = next(self.model.parameters()).device
        with torch.no_grad():
            mask = None if attention_mask is None else attention_mask.to(device)
            logits = self.model(input_ids=input_ids.to(device), attention_mask=mask, use_cache=False).logits
        return logits.to(input_ids.device)
