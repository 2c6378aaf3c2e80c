"""Shortcut cues: reliabilities hold in training splits, evaluation splits carry wrong cues or none."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.isomers import ConfigError, generate_records, load_domains, make_config
from iga.isomers.record import EVAL_SPLITS, SPLITS
from iga.isomers.rng import HashRng
from iga.isomers.shortcuts import DEFAULT_RELIABILITY, wrong_answer


def test_training_reliabilities_are_respected(small):
    for domain, p in DEFAULT_RELIABILITY.items():
        cues = [r["shortcut"] for split in ("train", "val") for r in small[split] if r["domain"] == domain]
        assert cues and all(c is not None for c in cues)
        rate = sum(c["correct"] for c in cues) / len(cues)
        assert abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / len(cues)), (domain, rate, p, len(cues))


def test_cues_are_consistent_with_the_record(small):
    for split in ("train", "val"):
        for r in small[split]:
            cue = r["shortcut"]
            assert r["question"].startswith(cue["text"] + " ")
            assert cue["value"] in cue["text"]
            assert cue["correct"] == (cue["value"] == r["answer"])
            if r["answer_type"] in ("bool", "tri", "label", "entity"):
                assert cue["value"] in r["label_space"]


def test_evaluation_splits_carry_no_cue_by_default(small):
    assert all(r["shortcut"] is None for split in EVAL_SPLITS if split != "val" for r in small[split])


def test_wrong_mode_puts_an_always_wrong_cue_on_every_evaluation_rendering(domains):
    records = generate_records(make_config("tiny", shortcut={"eval": "wrong"}), 0, domains=domains)
    for split in ("id_test", "ood_surface", "ood_depth", "stress"):
        for r in records[split]:
            cue = r["shortcut"]
            assert cue is not None and cue["correct"] is False and cue["value"] != r["answer"], r["id"]
    assert all(r["shortcut"] is not None for r in records["train"])


def test_cues_can_be_switched_off(domains):
    records = generate_records(
        make_config("tiny", shortcut={"enabled": False, "eval": "wrong"}), 0, domains=domains
    )
    assert all(r["shortcut"] is None for split in SPLITS for r in records[split])


def test_a_training_domain_without_a_reliability_is_an_error(tmp_path):
    text = (Path(__file__).parent / "data" / "astronomy.yaml").read_text(encoding="utf-8")
    (tmp_path / "astronomy.yaml").write_text(text.replace("role: heldout", "role: train"))
    loaded = load_domains(tmp_path)
    with pytest.raises(ConfigError, match=r"shortcut.reliability: no entry for training domain 'astronomy'"):
        generate_records(
            make_config("tiny", skeletons=["S01"], domains=["math", "astronomy"]), 0, domains=loaded
        )
    records = generate_records(
        make_config(
            "tiny",
            skeletons=["S01"],
            domains=["math", "astronomy"],
            shortcut={"reliability": {"astronomy": 0.5}},
        ),
        0,
        domains=loaded,
    )
    assert any(r["shortcut"] and r["domain"] == "astronomy" for r in records["train"])


def test_reliability_must_be_a_probability():
    with pytest.raises(ConfigError, match=r"shortcut.reliability.math: expected a probability in \[0, 1\]"):
        make_config("tiny", shortcut={"reliability": {"math": 1.5}})
    with pytest.raises(ConfigError, match=r"shortcut.eval: 'always' is not one of none, wrong"):
        make_config("tiny", shortcut={"eval": "always"})


@given(st.integers(0, 10**6), st.integers(0, 2**32))
def test_wrong_int_is_a_different_non_negative_int(value, seed):
    wrong = int(wrong_answer(str(value), "int", [], HashRng(seed)))
    assert wrong >= 0 and wrong != value and abs(wrong - value) <= 2


@given(st.integers(1, 200), st.integers(1, 200), st.integers(0, 2**32))
def test_wrong_fraction_is_a_different_probability(p, q, seed):
    value = Fraction(min(p, q), max(p, q))
    text = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    wrong = Fraction(wrong_answer(text, "fraction", [], HashRng(seed)))
    assert wrong != value and 0 < wrong <= 1


@given(st.lists(st.text(min_size=1, max_size=5), min_size=2, max_size=6, unique=True), st.integers(0, 2**32))
def test_wrong_label_comes_from_the_label_space(labels, seed):
    wrong = wrong_answer(labels[0], "label", labels, HashRng(seed))
    assert wrong in labels[1:]


# ---- the cue-free validation split (strip_cue) ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_stripping_the_cue_gives_exactly_the_record_of_a_suite_built_without_cues(seed):
    from iga.isomers.shortcuts import strip_cue

    with_cues = generate_records(make_config("tiny"), seed=seed)
    without = generate_records(make_config("tiny", shortcut={"enabled": False}), seed=seed)
    assert any(r["shortcut"] for r in with_cues["val"])
    for split in SPLITS:
        assert [strip_cue(r) for r in with_cues[split]] == without[split], split


def test_strip_cue_leaves_the_input_alone_and_refuses_a_question_without_its_cue():
    from iga.isomers.shortcuts import strip_cue

    rec = {"id": "S01-val-00000-math", "question": "Q?", "shortcut": None}
    assert strip_cue(rec) == rec and strip_cue(rec) is not rec
    cued = {"id": "S01-val-00001-math", "question": "Hint: 3. Q?", "shortcut": {"text": "Hint: 3."}}
    strip_cue(cued)
    assert cued["question"] == "Hint: 3. Q?"
    with pytest.raises(ValueError, match=r"S01-val-00002-math.*does not start with its shortcut cue"):
        strip_cue({**cued, "id": "S01-val-00002-math", "question": "Q? Hint: 3."})
