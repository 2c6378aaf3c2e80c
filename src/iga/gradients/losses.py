"""Per-domain token losses: ``L_k`` = mean token cross-entropy over domain k's supervised tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100


def per_domain_token_loss(
    logits: Tensor, labels: Tensor, domain_ids: Tensor, num_domains: int, *, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Mean next-token cross-entropy of each domain, shape (K,).

    Hugging Face causal-LM convention: ``labels`` are the input ids with ``-100`` on prompt and padding tokens,
    *not* shifted; position t of ``logits`` predicts ``labels[:, t + 1]``. Ignored tokens count nowhere (neither
    in a numerator nor in a denominator). ``L_k = Σ_{t ∈ k} ℓ_t / N_k`` pools the tokens of all of domain k's rows,
    so a long answer weighs more than a short one inside its domain, while every domain weighs the same in
    the training objective ``L = per_domain_token_loss(...).mean()``. Computed in at least fp32.

    Args:
        logits: (B, T, V) model outputs.
        labels: (B, T) integer targets, ``ignore_index`` where unsupervised.
        domain_ids: (B,) integer domain of each row, values in ``0..num_domains-1``.
        num_domains: K.

    Raises:
        ValueError: on shape mismatches, out-of-range domain ids, or a domain without any supervised token.

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 3, 5)                      # uniform predictions
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 4]])
        >>> per_domain_token_loss(logits, labels, torch.tensor([0, 1]), 2)  # ln 5 each
        tensor([1.6094, 1.6094])
    """
    check_domain_batch(logits, labels, domain_ids, num_domains)
    bsz, seq, vocab = logits.shape
    ids = domain_ids.long().to(logits.device)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    shift_labels = labels[:, 1:].to(logits.device)
    tok = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).to(dtype),
        shift_labels.reshape(-1),
        ignore_index=ignore_index,
        reduction="none",
    ).view(bsz, seq - 1)
    supervised = (shift_labels != ignore_index).to(dtype)
    return domain_mean(tok.sum(1), supervised.sum(1), ids, num_domains, ignore_index=ignore_index)


def check_domain_batch(logits: Tensor, labels: Tensor, domain_ids: Tensor, num_domains: int) -> None:
    """Shape and range checks shared by every per-domain loss (cross-entropy here, KD in the teachers)."""
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape (batch, seq, vocab), got {tuple(logits.shape)}")
    bsz, seq, _ = logits.shape
    if labels.shape != (bsz, seq):
        raise ValueError(f"labels must have shape {(bsz, seq)} to match logits, got {tuple(labels.shape)}")
    if domain_ids.shape != (bsz,):
        raise ValueError(
            f"domain_ids must have shape ({bsz},) (one domain per row), got {tuple(domain_ids.shape)}"
        )
    if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < 1:
        raise ValueError(f"num_domains must be a positive int, got {num_domains!r}")
    if bsz and (int(domain_ids.min()) < 0 or int(domain_ids.max()) >= num_domains):
        raise ValueError(
            f"domain_ids must hold values in 0..{num_domains - 1}; got values in "
            f"{int(domain_ids.min())}..{int(domain_ids.max())}"
        )


def domain_mean(
    values: Tensor, counts: Tensor, ids: Tensor, num_domains: int, *, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """``(Σ values of domain k) / (Σ counts of domain k)`` for each k; a domain with no count is an error."""
    dom_sum = torch.zeros(num_domains, dtype=values.dtype, device=values.device).index_add(0, ids, values)
    dom_cnt = torch.zeros(num_domains, dtype=values.dtype, device=values.device).index_add(0, ids, counts)
    empty = torch.nonzero(dom_cnt == 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"domain(s) {empty} have no supervised token in this batch (all their labels are {ignore_index} after "
            "the causal shift); every domain needs at least one supervised token"
        )
    return dom_sum / dom_cnt
