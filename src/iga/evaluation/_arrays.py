"""Input coercion shared by the array metrics: float64 matrices and isomer-set grouping.

Metrics accept numpy arrays, torch tensors (any dtype or device) and plain lists, so callers never convert by
hand; torch is never imported here (a tensor is recognised by its ``detach`` method).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np


def as_matrix(x: Any, name: str = "h") -> np.ndarray:
    """``x`` as a finite float64 ``N×D`` array; raises ``ValueError`` naming ``name`` otherwise."""
    if hasattr(x, "detach"):  # torch.Tensor; .double() first because numpy has no bfloat16
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (examples × hidden), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: no rows")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def as_labels(x: Any, n: int, name: str) -> list[Hashable]:
    """``x`` as a list of ``n`` hashable labels (set ids, domains)."""
    if hasattr(x, "tolist"):  # numpy array or tensor: plain Python scalars hash and compare predictably
        x = x.tolist()
    labels = list(x)
    if len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels (one per row), got {len(labels)}")
    for i, label in enumerate(labels):
        if not isinstance(label, Hashable):
            raise TypeError(f"{name}[{i}]: labels must be hashable, got {type(label).__name__}")
    return labels


def group_indices(labels: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Row indices per label, in order of first appearance.

    >>> {k: v.tolist() for k, v in group_indices(["a", "b", "a"]).items()}
    {'a': [0, 2], 'b': [1]}
    """
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return {k: np.asarray(v, dtype=np.intp) for k, v in groups.items()}


def multi_member_sets(labels: Sequence[Hashable]) -> tuple[list[np.ndarray], int]:
    """Index arrays of the sets with ≥ 2 members, and the number of singleton sets skipped.

    A set of one carries no information about consistency, so every set-level metric skips it.
    """
    groups = group_indices(labels)
    kept = [idx for idx in groups.values() if len(idx) >= 2]
    return kept, len(groups) - len(kept)
