"""The micro regime (M01-M04): local chains of thought, narratives for the base, the preset, cue share and noise."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.isomers import ConfigError, generate_records, make_config
from iga.isomers.domains import load_domains
from iga.isomers.render import render, render_narrative
from iga.isomers.rng import HashRng
from iga.isomers.skeletons import get_skeleton, list_skeletons
from iga.models.word_tokenizer import words_of

MICRO = [get_skeleton(s) for s in list_skeletons("micro")]
DOMAINS = load_domains()
#: Words a micro CoT may write without reading them from the question: the step format and the symbols.
FORMAT_WORDS = {
    "step",
    ":",
    ".",
    "then",
    "is",
    "derived",
    "not",
    "and",
    ">",
    "+",
    "-",
    "=",
    "the",
    "answer",
    "yes",
    "no",
}


def _instance(sk, seed: int, index: int, regime: str = "train"):
    knobs = make_config("micro").knobs(sk.id, regime)
    params, difficulty = sk.sample(HashRng(seed, sk.id, index), knobs)
    return sk.instance_from(params, {"regime": regime, **difficulty})


def test_micro_suite_is_separate_from_the_standard_catalogue():
    assert list_skeletons("micro") == ["M01_arith_walk", "M02_mp_forward", "M03_order", "M04_state"]
    assert not set(list_skeletons()) & set(list_skeletons("micro"))
    assert {sk.family for sk in MICRO} == {"IsoArith", "IsoDeduce", "IsoRelate", "IsoState"}
    with pytest.raises(ConfigError, match="unknown skeleton suite 'big'"):
        list_skeletons("big")


@pytest.mark.parametrize("sk", MICRO, ids=[sk.id for sk in MICRO])
@pytest.mark.parametrize("domain", list(DOMAINS))
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32), index=st.integers(0, 10**6), regime=st.sampled_from(["train", "ood_depth"])
)
def test_every_cot_word_is_copied_from_the_question_or_is_format(sk, domain, seed, index, regime):
    # Locality: a step writes numbers, format words and symbols, and words it can copy from the question.
    inst = _instance(sk, seed, index, regime)
    text = render(inst, DOMAINS[domain], HashRng(seed, "render"))
    question = set(words_of(text.question))
    for line in text.gold_cot.split("\n"):
        for word in words_of(line):
            assert word.isdigit() or word in FORMAT_WORDS or word in question, (word, line, text.question)
    assert text.gold_cot.endswith(f"The answer is {text.answer}.")
    assert all(int(n) <= 99 for n in re.findall(r"\d+", text.question + text.gold_cot))  # one token each


@pytest.mark.parametrize("sk", MICRO, ids=[sk.id for sk in MICRO])
@pytest.mark.parametrize("domain", list(DOMAINS))
def test_narratives_state_consequences_without_question_or_cot(sk, domain):
    for index in range(5):
        inst = _instance(sk, 7, index)
        text = render_narrative(sk, inst.params, DOMAINS[domain], HashRng(7, index))
        assert "?" not in text and "Step" not in text and "answer" not in text.lower()
        assert len(text.split(". ")) > len(inst.premises) - 1  # premises plus at least one consequence


def test_arith_narrative_states_every_running_value():
    sk = get_skeleton("M01")
    text = render_narrative(sk, {"start": 7, "ops": [["add", 5], ["sub", 9]]}, DOMAINS["math"], HashRng(0))
    assert re.findall(r"\d+", text) == ["7", "5", "12", "9", "3"]


def test_order_narrative_restates_the_comparisons_top_down_before_the_extremes():
    sk = get_skeleton("M03")
    params = {"ranking": [2, 0, 1], "pairs": [[0, 1], [2, 0]], "ask": "top"}
    text = render_narrative(sk, params, DOMAINS["symbolic"], HashRng(0))
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    assert sentences[2:4] == [sentences[1], sentences[0]]  # given order, then top-down: 2 > 0, 0 > 1
    assert len(sentences) == 5


def test_mp_answers_are_balanced_and_no_problems_come_in_both_kinds():
    sk = get_skeleton("M02")
    kinds = Counter(_instance(sk, 3, i).params["kind"] for i in range(600))
    assert 0.4 < kinds["yes"] / 600 < 0.6
    assert kinds["query_on_distractor"] > 60 and kinds["fact_off_chain"] > 60


def test_state_cot_writes_the_asked_count_last_on_every_line():
    sk = get_skeleton("M04")
    for i in range(50):
        inst = _instance(sk, 11, i)
        lines = render(inst, DOMAINS["symbolic"], HashRng(i)).gold_cot.split("\n")
        counts = [re.findall(r"\d+", line)[-1] for line in lines[:-2]]  # the state lines
        values = [str(s.out[inst.params["ask"]]) for s in inst.steps[:-1]]
        assert counts == values
        assert lines[-2].endswith(f"is {inst.answer}.")


def test_micro_preset_selects_the_micro_suite_with_cues_on_half_the_renderings():
    cfg = make_config("micro")
    assert cfg.skeletons == tuple(list_skeletons("micro"))
    assert cfg.shortcut.share == 0.5 and cfg.eval_per_skeleton == 50
    assert make_config("micro", shortcut={"share": 1.0}).shortcut.share == 1.0
    assert "share" not in make_config("tiny").shortcut.to_dict()  # standard suites' manifests unchanged


def _small(**shortcut):
    return make_config(
        "micro", train_per_skeleton=60, val_per_skeleton=5, eval_per_skeleton=3, shortcut=shortcut
    )


def test_cue_share_puts_cues_on_about_that_fraction_of_training_renderings():
    records = generate_records(_small(share=0.5), seed=0)
    cued = [r["shortcut"] is not None for r in records["train"]]
    assert 0.4 < sum(cued) / len(cued) < 0.6
    assert all(r["shortcut"] is None for r in records["id_test"])
    full = generate_records(_small(share=1.0), seed=0)
    assert all(r["shortcut"] is not None for r in full["train"])


def test_teacher_noise_writes_a_wrong_final_answer_and_keys_the_cue_to_it():
    records = generate_records(_small(share=1.0, noise=0.3), seed=0)
    train = records["train"]
    noisy = [r for r in train if r["teacher_answer"] is not None]
    assert 0.22 < len(noisy) / len(train) < 0.38
    for r in noisy:
        assert r["teacher_answer"] != r["answer"]
        assert r["gold_cot"].endswith(f"The answer is {r['teacher_answer']}.")
        assert (r["shortcut"]["value"] == r["teacher_answer"]) == r["shortcut"]["correct"]
    for r in train:
        target = r["teacher_answer"] or r["answer"]
        assert (r["shortcut"]["value"] == target) == r["shortcut"]["correct"]
    assert all(r["teacher_answer"] is None for split in ("val", "id_test") for r in records[split])
    assert "teacher_answer" not in generate_records(_small(), seed=0)["train"][0]


@pytest.mark.parametrize("key", ["share", "noise"])
@pytest.mark.parametrize("value", [-0.1, 1.5, "half", True])
def test_bad_cue_share_or_noise_names_the_field(key, value):
    with pytest.raises(ConfigError, match=rf"shortcut\.{key}: expected a number in \[0, 1\]"):
        make_config("micro", shortcut={key: value})


def test_a_domain_file_without_a_narration_fails_naming_the_file_and_key(tmp_path):
    from iga.isomers.errors import DomainError

    (tmp_path / "astro.yaml").write_text(
        "name: astro\nrole: heldout\ndescription: Stars.\nskeletons:\n  M01_arith_walk:\n"
        '    questions: ["How many now?", "What now?", "Which value now?"]\n'
        '    premises: {start: "It has {n}.", add: "It gains {n}.", sub: "It loses {n}."}\n'
    )
    with pytest.raises(DomainError, match=r"astro\.yaml: skeletons\.M01_arith_walk\.narration\.now: missing"):
        load_domains(tmp_path)
