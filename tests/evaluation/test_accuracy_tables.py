"""Accuracy tables and headline summary, against hand-computed values."""

from __future__ import annotations

import json

import pytest

from iga.evaluation.accuracy import accuracy_table, pair_scores, summarise
from iga.evaluation.scores import ModeScore, RecordScore

TRAIN, HELDOUT = ("math", "law"), ("finance", "sports", "cooking")


def rec(rid: str, instance: str, split: str, domain: str, family: str, skeleton: str) -> dict:
    return {
        "id": rid,
        "instance_id": instance,
        "split": split,
        "domain": domain,
        "family": family,
        "skeleton": skeleton,
    }


def score(
    rid: str, strict: bool, flexible: bool, *, fail_strict: bool = False, fail_flexible: bool = False
) -> RecordScore:
    def mode(correct: bool, failed: bool) -> ModeScore:
        return ModeScore(
            correct, failed, None if failed else "5", None if failed else 5, None if failed else "final"
        )

    return RecordScore(rid, "…", mode(strict, fail_strict), mode(flexible, fail_flexible))


RECORDS = [
    rec("i-math", "I1", "id_test", "math", "IsoArith", "S01"),
    rec("i-law", "I1", "id_test", "law", "IsoArith", "S01"),
    rec("i-fin", "I1", "id_test", "finance", "IsoArith", "S01"),
    rec("i-spo", "I1", "id_test", "sports", "IsoArith", "S01"),
    rec("o-math", "O1", "ood_surface", "math", "IsoArith", "S01"),
    rec("o-fin", "O1", "ood_surface", "finance", "IsoArith", "S01"),
    rec("o-spo", "O1", "ood_surface", "sports", "IsoArith", "S01"),
    rec("o-coo", "O1", "ood_surface", "cooking", "IsoArith", "S01"),
    rec("d-math", "D1", "ood_depth", "math", "IsoDeduce", "S06"),
    rec("d-law", "D1", "ood_depth", "law", "IsoDeduce", "S06"),
]
SCORES = [
    score("i-math", True, True),
    score("i-law", False, True, fail_strict=True),
    score("i-fin", True, True),
    score("i-spo", False, False, fail_strict=True, fail_flexible=True),
    score("o-math", True, True),
    score("o-fin", False, True),
    score("o-spo", False, False),
    score("o-coo", True, True),
    score("d-math", True, True),
    score("d-law", True, True),
]


def test_table_by_split_hand_computed() -> None:
    rows = accuracy_table(RECORDS, list(reversed(SCORES)))  # scores are matched by id, not position
    assert [r["split"] for r in rows] == ["id_test", "ood_surface", "ood_depth"]  # SPLITS order
    assert rows[0] == {
        "split": "id_test",
        "n": 4,
        "accuracy_strict": 0.5,
        "accuracy_flexible": 0.75,
        "extraction_failure_strict": 0.5,
        "extraction_failure_flexible": 0.25,
    }
    assert rows[1]["accuracy_strict"] == 0.5 and rows[1]["accuracy_flexible"] == 0.75


def test_table_by_split_and_domain() -> None:
    rows = accuracy_table(RECORDS, SCORES, by=("split", "domain"))
    assert len(rows) == 10
    law = next(r for r in rows if (r["split"], r["domain"]) == ("id_test", "law"))
    assert (law["n"], law["accuracy_strict"], law["accuracy_flexible"]) == (1, 0.0, 1.0)
    families = accuracy_table(RECORDS, SCORES, by="family")
    assert [(r["family"], r["n"]) for r in families] == [("IsoArith", 8), ("IsoDeduce", 2)]


def test_summary_headline_numbers() -> None:
    summary = summarise(RECORDS, SCORES, TRAIN, HELDOUT)
    assert summary["id_accuracy"] == 0.5  # id_test ∩ train domains: math ✓, law ✗
    assert summary["ood_accuracy"] == pytest.approx(
        1 / 3
    )  # ood_surface ∩ held-out: finance ✗, sports ✗, cooking ✓
    assert summary["ood_depth_accuracy"] == 1.0
    assert (summary["n_id"], summary["n_ood"], summary["n_ood_depth"]) == (2, 3, 2)
    assert summary["gap"] == pytest.approx(1 / 6)
    assert summary["relative_gap"] == pytest.approx(1 / 3)
    flexible = summarise(RECORDS, SCORES, TRAIN, HELDOUT, mode="flexible")
    assert (flexible["id_accuracy"], flexible["ood_accuracy"]) == (1.0, pytest.approx(2 / 3))


def test_summary_breakdowns_and_json() -> None:
    summary = summarise(RECORDS, SCORES, TRAIN, HELDOUT)
    assert summary["by_family"]["IsoArith"]["id_accuracy"] == 0.5
    assert summary["by_family"]["IsoDeduce"]["id_accuracy"] is None
    assert summary["by_family"]["IsoDeduce"]["ood_depth_accuracy"] == 1.0
    assert summary["by_skeleton"]["S01"]["gap"] == pytest.approx(1 / 6)
    assert summary["by_domain"]["math"] == {"id_test": 1.0, "ood_surface": 1.0, "ood_depth": 1.0}
    assert summary["by_domain"]["finance"] == {"id_test": 1.0, "ood_surface": 0.0}
    assert summary["by_split"]["id_test"]["extraction_failure_strict"] == 0.5
    assert summary["overall"]["n"] == 10 and summary["overall"]["accuracy_strict"] == 0.6
    # I1 (strict): ✓✗✓✗ → p(1-p) = 0.25, not all correct, 1 of 6 pairs agree (the two failures agree on nothing)
    assert summary["behaviour"]["id_test"] == {
        "correctness_variance": 0.25,
        "set_accuracy": 0.0,
        "answer_agreement": pytest.approx(1 / 6),
        "n_sets": 1,
        "n_skipped": 0,
    }
    assert json.loads(json.dumps(summary, sort_keys=True))["by_family"]["IsoArith"]["n_ood"] == 3


def test_records_without_grouping_fields_are_grouped_as_missing() -> None:
    imported = [
        {"id": "x1", "instance_id": "X", "domain": "math"},
        {"id": "x2", "instance_id": "X", "domain": "law"},
    ]
    scores = [score("x1", True, True), score("x2", False, False)]
    rows = accuracy_table(imported + RECORDS[:1], [*scores, SCORES[0]], by="split")
    assert rows[-1]["split"] is None and rows[-1]["n"] == 2
    summary = summarise(imported, scores, TRAIN, HELDOUT)
    assert summary["by_family"]["<missing>"]["id_accuracy"] is None
    json.dumps(summary, sort_keys=True)  # mixed None/str keys would make this raise


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="no score for record id 'i-math'"):
        pair_scores(RECORDS, SCORES[1:])
    with pytest.raises(ValueError, match="two scores for record id 'i-math'"):
        pair_scores(RECORDS, [*SCORES, SCORES[0]])
    with pytest.raises(ValueError, match="by: unknown field 'colour'; allowed: split, domain"):
        accuracy_table(RECORDS, SCORES, by=("colour",))
    with pytest.raises(ValueError, match="overlap"):
        summarise(RECORDS, SCORES, TRAIN, ("math",))
    with pytest.raises(ValueError, match="mode: unknown 'loose'; allowed: strict, flexible"):
        summarise(RECORDS, SCORES, TRAIN, HELDOUT, mode="loose")
