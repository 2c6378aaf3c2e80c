"""The derived ``val_nocue`` split: ``val`` evaluated with its shortcut cues removed, scored as its own split."""

from __future__ import annotations

import pytest

from iga.isomers import build_suite, make_config
from iga.runs.evaluate import check_eval_splits, derive_split, evaluate_model
from iga.utils.io import read_jsonl


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    build_suite(make_config("tiny", skeletons=["S06"]), out, seed=0)
    return out


def test_derived_records_are_the_val_records_without_cues(suite):
    val = read_jsonl(suite / "val.jsonl")
    derived = derive_split("val_nocue", val)
    assert len(derived) == len(val) and any(r["shortcut"] for r in val)
    for src, rec in zip(val, derived, strict=True):
        assert rec["id"] == src["id"] + ":nocue" and rec["split"] == "val_nocue"
        assert rec["shortcut"] is None and rec["instance_id"] == src["instance_id"]
        cue = src["shortcut"]
        assert src["question"] == (f"{cue['text']} {rec['question']}" if cue else rec["question"])
    assert derive_split("id_test", val) == val


def test_evaluation_scores_val_and_val_nocue_separately(suite, model, tokenizer):
    ev = evaluate_model(
        model,
        tokenizer,
        suite,
        train_domains=["math", "medicine", "law", "science"],
        splits=("val", "val_nocue"),
        per_skeleton=2,
        max_new_tokens=4,
        progress=False,
    )
    s = ev["summary"]
    n = len(read_jsonl(suite / "val.jsonl"))  # the tiny preset has fewer than 2 val sets per skeleton
    assert s["n_val"] == s["n_val_nocue"] == n > 0
    assert s["val_nocue_accuracy"] is not None and s["by_split"].keys() >= {"val", "val_nocue"}
    ids = [c["id"] for c in ev["completions"]]
    assert len(ids) == len(set(ids)) == 2 * n and sum(i.endswith(":nocue") for i in ids) == n


def test_unknown_evaluation_splits_are_refused_early():
    check_eval_splits(["val", "val_nocue", "id_test", "ood_surface", "ood_depth", "stress"])
    with pytest.raises(ValueError, match=r"unknown split .train.; allowed: val, id_test, .*val_nocue"):
        check_eval_splits(["id_test", "train"])


def test_a_sweep_spec_with_an_unknown_evaluation_split_fails_at_load_time():
    from iga.config import build_config
    from iga.sweeps.sweep import SweepSpec

    with pytest.raises(Exception, match="unknown split 'vall'"):
        build_config(SweepSpec, {"eval_splits": ["vall"]}, source="spec.yaml")


def test_cue_following_is_paired_over_the_same_wrong_cue_problems():
    from iga.evaluation import summarise
    from iga.evaluation.scores import ModeScore, RecordScore

    def rec(i, split, cue_value, correct, hidden=False):
        cue = {"text": "Hint.", "value": cue_value, "correct": correct}
        return {
            "id": f"r{i}-{split}",
            "instance_id": f"I{i}",
            "split": split,
            "domain": "math",
            "answer": "3",
            "answer_type": "int",
            "shortcut": None if hidden else cue,
            "hidden_shortcut": cue if hidden else None,
        }

    def score(r, value):
        ok = value == 3
        return RecordScore(
            r["id"], "", ModeScore(ok, False, str(value), value), ModeScore(ok, False, str(value), value)
        )

    # Three wrong cues (value 5) and one right cue: with cues the model says 5, 5, 3; without, 3, 5, 3.
    shown = [
        rec(0, "val", "5", False),
        rec(1, "val", "5", False),
        rec(2, "val", "5", False),
        rec(3, "val", "3", True),
    ]
    hidden = [
        rec(i, "val_nocue", r["shortcut"]["value"], r["shortcut"]["correct"], True)
        for i, r in enumerate(shown)
    ]
    answers = [5, 5, 3, 3, 3, 5, 3, 3]
    records = shown + hidden
    s = summarise(records, [score(r, a) for r, a in zip(records, answers, strict=True)], ["math"], [])
    assert s["n_wrong_cue"] == 3
    assert s["cue_follow"] == pytest.approx(2 / 3) and s["cue_follow_nocue"] == pytest.approx(1 / 3)
    assert s["val_accuracy"] == pytest.approx(2 / 4) and s["val_nocue_accuracy"] == pytest.approx(3 / 4)
