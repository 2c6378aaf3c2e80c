"""Behavioural companions of LCS, against hand-computed values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.evaluation.behaviour import (
    answer_agreement,
    behavioural_report,
    correctness_variance,
    id_ood_gap,
    set_accuracy,
)

# set a: 3/4 correct; set b: all correct; set c: none correct; set d: singleton (skipped)
IDS = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"]
CORRECT = [True, True, True, False, True, True, True, False, False, True]
PREDS = ["7", "7", "7", "8", Fraction(1, 2), Fraction(1, 2), Fraction(1, 2), None, None, "x"]


def test_correctness_variance_hand_computed() -> None:
    # a: 0.75·0.25 = 0.1875, b: 0, c: 0 → mean 0.0625
    assert correctness_variance(IDS, CORRECT) == pytest.approx(0.0625, abs=1e-15)


def test_set_accuracy_hand_computed() -> None:
    assert set_accuracy(IDS, CORRECT) == pytest.approx(1 / 3)


def test_answer_agreement_hand_computed() -> None:
    # a: 3 of 6 pairs agree; b: 3 of 3; c: two failed extractions agree on nothing → 0 of 1
    assert answer_agreement(IDS, PREDS) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_agreement_counts_wrong_but_identical_answers() -> None:
    assert answer_agreement([1, 1], ["42", "42"]) == 1.0
    assert correctness_variance([1, 1], [False, False]) == 0.0


def test_gap_and_relative_gap() -> None:
    assert id_ood_gap(0.75, 0.5) == (0.25, pytest.approx(1 / 3))
    assert id_ood_gap(0.0, 0.0) == (0.0, None)


def test_report_collects_all_metrics_and_counts() -> None:
    report = behavioural_report(IDS, np.array(CORRECT), PREDS)
    assert report == {
        "correctness_variance": pytest.approx(0.0625),
        "set_accuracy": pytest.approx(1 / 3),
        "answer_agreement": pytest.approx(0.5),
        "n_sets": 3,
        "n_skipped": 1,
    }


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="correct: expected 4 flags"):
        set_accuracy([1, 1, 2, 2], [True, False])
    with pytest.raises(ValueError, match="booleans"):
        set_accuracy([1, 1], [0.5, 1.0])
    with pytest.raises(ValueError, match="predictions: expected 2"):
        behavioural_report([1, 1], [True, True], ["1"])
    with pytest.raises(ValueError, match="two or more members"):
        correctness_variance([1, 2], [True, False])


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=40))
def test_correctness_variance_bounds_and_consistency(rows: list[tuple[int, bool]]) -> None:
    ids = [0, 0] + [i for i, _ in rows]
    correct = [True, True] + [c for _, c in rows]
    variance = correctness_variance(ids, correct)
    assert 0.0 <= variance <= 0.25
    # a set whose members are all right (or all wrong) contributes no variance, so zero variance ⇔ every set is uniform
    uniform = all(len({c for i2, c in zip(ids, correct, strict=True) if i2 == i}) == 1 for i in set(ids))
    assert (variance == 0.0) == uniform
