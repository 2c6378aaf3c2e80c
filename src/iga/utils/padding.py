"""Right padding of token rows into a batch, shared by the training collator and the micro base's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def right_pad(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int) -> dict[str, Any]:
    """``(input_ids, labels)`` rows as ``input_ids`` / ``attention_mask`` / ``labels`` tensors of the longest row's
    width: ids padded with ``pad_token_id``, labels with -100 (no loss), the mask 1 on the real tokens.

    >>> batch = right_pad([([5, 6, 7], [-100, 6, 7]), ([8], [8])], pad_token_id=0)
    >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["labels"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]], [[-100, 6, 7], [8, -100, -100]])
    """
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
