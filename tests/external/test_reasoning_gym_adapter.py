"""The reasoning-gym adapter: our extraction feeding reasoning-gym's own score_answer."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip(
    "reasoning_gym", reason="reasoning-gym is not installed (pip install reasoning-gym==0.1.25)"
)

from iga.external import reasoning_gym as rga

os.environ.setdefault("HF_HUB_OFFLINE", "1")
N = 6


def _gold(task, entry) -> str:
    return entry["metadata"]["example_answer"] if task.answer_type is None else entry["answer"]


def _wrong(task, entry) -> str:
    if task.answer_type in ("fraction", "int"):
        return str(int(entry["answer"]) + 1)
    if task.answer_type == "bool":
        return "No" if entry["answer"] == "Yes" else "Yes"
    if task.answer_type == "label":
        return next(r for r in task.label_space if r != entry["answer"])
    return "Z"  # a variable no premise mentions


@pytest.mark.parametrize("name", list(rga.TASKS))
def test_gold_answers_get_full_credit_and_wrong_ones_none(name):
    task = rga.get_task(f"reasoning_gym:{name}")
    dataset, entries = rga.build_items(task, N, seed=3)
    gold = rga.score_completions(
        task, dataset, entries, [f"Step 1: think.\nThe answer is {_gold(task, e)}." for e in entries]
    )
    for mode in rga.MODES:
        assert gold[mode] == {
            "accuracy": 1.0,
            "mean_score": 1.0,
            "extraction_failures": 0,
            "extraction_failure_rate": 0.0,
        }
    wrong = rga.score_completions(
        task, dataset, entries, [f"The answer is {_wrong(task, e)}." for e in entries]
    )
    assert wrong["strict"]["accuracy"] == 0.0 and wrong["strict"]["extraction_failures"] == 0
    assert all(item["strict"]["score"] < 1.0 for item in wrong["items"])
    none = rga.score_completions(task, dataset, entries, ["Let me think about it."] * N)
    assert none["strict"]["extraction_failures"] == N and none["strict"]["mean_score"] == 0.0
    assert none["flexible"]["accuracy"] == 0.0


def test_flexible_mode_recovers_answers_that_strict_mode_counts_as_failures():
    task = rga.get_task("gsm_symbolic")
    dataset, entries = rga.build_items(task, N, seed=1)
    result = rga.score_completions(
        task, dataset, entries, [f"So in total we get {e['answer']}" for e in entries]
    )
    assert result["strict"]["extraction_failures"] == N and result["strict"]["accuracy"] == 0.0
    assert (
        result["flexible"]["accuracy"] == 1.0
        and result["items"][0]["flexible"]["method"] == "fallback_number"
    )

    logic = rga.get_task("propositional_logic")
    dataset, entries = rga.build_items(logic, N, seed=1)
    ascii_answers = [
        e["metadata"]["example_answer"]
        .replace("∧", "&")
        .replace("∨", "|")
        .replace("→", "->")
        .replace("↔", "<->")
        .replace("¬", "~")
        for e in entries
    ]
    result = rga.score_completions(logic, dataset, entries, [f"The answer is {a}." for a in ascii_answers])
    assert result["flexible"]["accuracy"] == 1.0  # the notation is the question's; flexible accepts ASCII
    changed = [a != e["metadata"]["example_answer"] for a, e in zip(ascii_answers, entries, strict=True)]
    assert result["strict"]["accuracy"] == 1 - sum(changed) / N


def test_items_are_a_function_of_the_seed_and_records_carry_their_source():
    task = rga.get_task("syllogism")
    _, a = rga.build_items(task, 4, seed=7)
    _, b = rga.build_items(task, 4, seed=7)
    _, c = rga.build_items(task, 4, seed=8)
    assert [e["question"] for e in a] == [e["question"] for e in b] != [e["question"] for e in c]
    rec = rga.to_record(task, a[2], 2, 7)
    assert (
        rec["id"] == "rg-syllogism-s7-00002" and rec["answer_type"] == "bool" and rec["family"] == "IsoDeduce"
    )
    assert rec["source"] == {"dataset": "reasoning_gym:syllogism", "seed": 7, "index": 2}
    family = rga.to_record(rga.get_task("family_relationships"), {"question": "q", "answer": "aunt"}, 0, 0)
    assert "aunt" in family["label_space"] and "mother-in-law" in family["label_space"]


def test_bad_task_names_and_sizes_are_refused_with_the_allowed_values():
    with pytest.raises(
        ValueError,
        match="unknown external task 'reasoning_gym:zebra_puzzles'; supported: reasoning_gym:gsm_symbolic",
    ):
        rga.get_task("reasoning_gym:zebra_puzzles")
    with pytest.raises(ValueError, match="unknown external task 'gsm8k:gsm_symbolic'"):
        rga.get_task("gsm8k:gsm_symbolic")
    with pytest.raises(ValueError, match="n: must be >= 1"):
        rga.build_items(rga.get_task("syllogism"), 0, seed=0)
    with pytest.raises(ValueError, match="got 1 completions for 2 items"):
        rga.score_completions(rga.get_task("syllogism"), None, [{}, {}], ["x"])


@given(st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=64))
def test_numbers_reach_reasoning_gym_as_plain_digits_or_decimals(value):
    text = rga._number_text(value)
    if value.denominator == 1:
        assert text == str(value.numerator)
    else:
        assert "." in text and abs(float(text) - float(value)) <= 1e-12 * max(1.0, abs(float(value)))


def test_evaluate_task_generates_and_scores_with_a_tiny_model():
    import torch

    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(
        ["Consider these statements: All cats are pets. The answer is Yes."] * 30, vocab_size=300
    )
    model = build_student("micro", tok, seed=0)
    with torch.no_grad():
        out = rga.evaluate_task(
            model, tok, "reasoning_gym:syllogism", n=3, seed=0, max_new_tokens=4, batch_size=2, progress=False
        )
    assert out["task"] == "reasoning_gym:syllogism" and out["n"] == 3 and len(out["items"]) == 3
    assert out["reasoning_gym_version"] == "0.1.25" and out["family"] == "IsoDeduce"
    for mode in rga.MODES:
        s = out[mode]
        assert 0 <= s["accuracy"] <= s["mean_score"] <= 1
        assert s["extraction_failures"] == sum(it[mode]["answer"] is None for it in out["items"])
