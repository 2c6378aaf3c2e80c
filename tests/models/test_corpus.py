"""The pretraining corpus covers every domain's words but holds no task problem, question, CoT or answer."""

from __future__ import annotations

import re

import pytest

from iga.isomers import generate_records, load_domains
from iga.models.corpus import arithmetic_facts, build_corpus, premise_sentences


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(preset="tiny")


def test_no_questions_cots_or_answers(corpus):
    text = "\n".join(corpus.documents)
    assert "?" not in text
    assert "Step 1:" not in text and "The answer is" not in text
    assert any(
        line.startswith("Step 1:") for line in corpus.tokenizer_texts
    )  # the tokenizer does see CoT lines


def test_no_training_or_evaluation_problem_is_in_the_corpus(corpus):
    text = "\n".join(corpus.documents)
    records = [r for split in generate_records("tiny", seed=0).values() for r in split]
    # A full problem statement (all its premise sentences in a row) never appears.
    for rec in records[:200]:
        premises = " ".join(s for s in re.split(r"(?<=[.?!])\s+", rec["question"]) if not s.endswith("?"))
        assert premises not in text


def test_every_domain_contributes_sentences(corpus):
    records = [r for split in generate_records("tiny", seed=0 + 10_007).values() for r in split]
    domains = {r["domain"] for r in records}
    assert domains == set(load_domains())
    text = "\n".join(corpus.documents)
    for dom in domains:
        sents = premise_sentences([r for r in records if r["domain"] == dom])
        assert sum(s in text for s in sents) >= 0.9 * len(sents), dom


def test_arithmetic_facts_are_true():
    for fact in arithmetic_facts(max_sum=6, max_factor=4):
        m = re.fullmatch(r"(\d+) ([+\-×÷]) (\d+) = (\d+)\.", fact)
        if m is None:
            a, b, c, d = map(int, re.fullmatch(r"(\d+)/(\d+) of (\d+) is (\d+)\.", fact).groups())
            assert a * c == b * d
            continue
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert {"+": a + b, "-": a - b, "×": a * b, "÷": a // b if b and a % b == 0 else None}[op] == c


def test_corpus_is_deterministic(corpus):
    assert build_corpus(preset="tiny").fingerprint == corpus.fingerprint
    assert build_corpus(preset="tiny", seed=1).fingerprint != corpus.fingerprint


def test_recaps_repeat_their_paragraph_in_another_order(corpus):
    recaps = [d for d in corpus.documents if " Recap: " in d]
    assert len(recaps) > 0.2 * len(corpus.documents)
    for doc in recaps[:50]:
        head, tail = doc.split(" Recap: ")
        split = re.compile(r"(?<=[.!])\s+")
        assert sorted(split.split(head)) == sorted(split.split(tail))


def test_corpus_options_recaps_facts_and_copy_drills():
    base = build_corpus(preset="tiny")
    rich = build_corpus(preset="tiny", recaps="all", max_sum=60, max_factor=15, copy_drills=40)
    assert rich.fingerprint != base.fingerprint
    paragraphs = [d for d in rich.documents if " Recap: " in d]
    multi = [
        d
        for d in base.documents
        if " Recap: " not in d and ". " in d and "=" not in d and " Again: " not in d
    ]
    assert len(paragraphs) > len([d for d in base.documents if " Recap: " in d])
    assert multi  # under "half" some multi-sentence paragraphs have no recap …
    same_order = [d for d in paragraphs if d.split(" Recap: ")[0] == d.split(" Recap: ")[1]]
    assert same_order  # … under "all" odd paragraphs repeat verbatim
    drills = [d for d in rich.documents if " Again: " in d]
    assert len(drills) == 40
    for d in drills:
        head, tail = d.split(" Again: ")
        assert head == tail and 8 <= len(head.split()) <= 16
    assert "57 + 3 = 60." in "\n".join(rich.documents) and "57 + 3 = 60." not in "\n".join(base.documents)
    assert (
        build_corpus(preset="tiny", copy_drills=40).fingerprint
        == build_corpus(preset="tiny", copy_drills=40).fingerprint
    )
    with pytest.raises(ValueError, match="recaps must be one of"):
        build_corpus(preset="tiny", recaps="some")


def test_split_digits_off_keeps_the_cache_key_of_bases_built_before_the_option():
    from dataclasses import asdict, replace

    from iga.models.pretrain import pretrain_config
    from iga.utils.io import stable_hash

    cfg = pretrain_config("small")
    before = {k: v for k, v in asdict(cfg).items() if k != "split_digits"}
    assert cfg.key("fp") == stable_hash({"config": before, "corpus": "fp"})
    assert replace(cfg, split_digits=True).key("fp") != cfg.key("fp")
