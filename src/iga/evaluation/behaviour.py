"""Behavioural consistency across isomer sets, from generated answers (benchmarks.md §5.3).

Inputs are per-record: the isomer-set id, whether the answer was correct, and the *normalised* predicted value
(as extracted by :mod:`iga.isomers.answers`; ``None`` when extraction failed). Every set-level metric is a mean
over sets with ≥ 2 members, so each logical instance weighs the same however many domains it was rendered in.

>>> behavioural_report(["a", "a", "b", "b"], [True, False, True, True], ["4", "5", "x", "x"])["set_accuracy"]
0.5
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from iga.evaluation._arrays import as_labels, multi_member_sets


def _correct_array(correct: Sequence[bool], n: int) -> np.ndarray:
    arr = np.asarray(correct.tolist() if hasattr(correct, "tolist") else list(correct))
    if arr.shape != (n,):
        raise ValueError(f"correct: expected {n} flags (one per record), got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError("correct: flags must be booleans (or 0/1)")
    return arr.astype(bool)


def _sets(set_ids: Sequence[Hashable], n: int) -> list[np.ndarray]:
    groups, _ = multi_member_sets(as_labels(set_ids, n, "set_ids"))
    if not groups:
        raise ValueError("set_ids: no isomer set has two or more members")
    return groups


def correctness_variance(set_ids: Sequence[Hashable], correct: Sequence[bool]) -> float:
    """LCS_beh = mean over sets of ``p_s (1 − p_s)``, ``p_s`` the share of correct members; in ``[0, 0.25]``.

    >>> correctness_variance([1, 1, 2, 2], [True, False, True, True])
    0.125
    """
    flags = _correct_array(correct, len(set_ids))
    return float(np.mean([flags[idx].mean() * (1 - flags[idx].mean()) for idx in _sets(set_ids, len(flags))]))


def set_accuracy(set_ids: Sequence[Hashable], correct: Sequence[bool]) -> float:
    """Share of isomer sets whose members are *all* correct (GSM-IC macro accuracy / contrast-set consistency).

    >>> set_accuracy([1, 1, 2, 2], [True, False, True, True])
    0.5
    """
    flags = _correct_array(correct, len(set_ids))
    return float(np.mean([flags[idx].all() for idx in _sets(set_ids, len(flags))]))


def _same(a: Any, b: Any) -> bool:
    # A failed extraction is not an answer, so it agrees with nothing (not even another failure).
    return a is not None and b is not None and a == b


def answer_agreement(set_ids: Sequence[Hashable], predictions: Sequence[Any]) -> float:
    """Mean over sets of the share of member pairs whose predicted values are equal, right or wrong (ParaRel).

    Values are compared with ``==`` as given (already normalised); ``None`` (failed extraction) never agrees.

    >>> answer_agreement(["s"] * 3, ["7", "7", "8"])  # 1 of 3 pairs agree
    0.3333333333333333
    """
    preds = list(predictions)
    shares = []
    for idx in _sets(set_ids, len(preds)):
        pairs = list(combinations(idx.tolist(), 2))
        shares.append(sum(_same(preds[i], preds[j]) for i, j in pairs) / len(pairs))
    return float(np.mean(shares))


def id_ood_gap(id_accuracy: float, ood_accuracy: float) -> tuple[float, float | None]:
    """``(Acc_ID − Acc_OOD, (Acc_ID − Acc_OOD) / Acc_ID)``; the relative gap is ``None`` when Acc_ID is 0.

    >>> id_ood_gap(0.75, 0.5)
    (0.25, 0.3333333333333333)
    """
    gap = id_accuracy - ood_accuracy
    return gap, (gap / id_accuracy if id_accuracy > 0 else None)


def behavioural_report(
    set_ids: Sequence[Hashable], correct: Sequence[bool], predictions: Sequence[Any]
) -> dict[str, Any]:
    """All set-level behavioural metrics at once, with the set counts (a plain, JSON-serialisable dict)."""
    n = len(set_ids)
    if len(predictions) != n:
        raise ValueError(f"predictions: expected {n} values (one per record), got {len(predictions)}")
    groups, n_skipped = multi_member_sets(as_labels(set_ids, n, "set_ids"))
    return {
        "correctness_variance": correctness_variance(set_ids, correct),
        "set_accuracy": set_accuracy(set_ids, correct),
        "answer_agreement": answer_agreement(set_ids, predictions),
        "n_sets": len(groups),
        "n_skipped": n_skipped,
    }
