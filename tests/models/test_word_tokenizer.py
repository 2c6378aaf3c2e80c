"""The word-level tokenizer: one token per word and per integer, a deterministic vocabulary, loud unknown words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.isomers import generate_records, make_config
from iga.isomers.domains import load_domains
from iga.models.prompting import PromptFormat
from iga.models.word_tokenizer import (
    UnknownWordError,
    build_word_tokenizer,
    check_words,
    is_word_level,
    unknown_words,
    vocabulary,
    words_of,
)


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer()


def test_every_word_of_every_micro_record_is_one_known_token(tok):
    records = generate_records(
        make_config(
            "micro", train_per_skeleton=20, val_per_skeleton=2, eval_per_skeleton=5, shortcut={"noise": 0.2}
        ),
        seed=1,
    )
    fmt = PromptFormat()
    for split, rows in records.items():
        for r in rows:
            text = fmt.text(r)
            assert unknown_words(tok, text) == [], (split, r["id"])
            assert len(tok(text)["input_ids"]) == len(words_of(text))  # exactly one token per word


def test_integers_of_the_range_are_single_tokens_and_decode_back(tok):
    for n in range(100):
        ids = tok(f"{n} + 1 = {n + 1}.")["input_ids"]
        assert len(ids) == 6 if n < 99 else ids.count(tok.unk_token_id) == 1
    assert tok.decode(tok("Step 1: 12 + 7 = 19.\nThe answer is 19.")["input_ids"]) == (
        "step 1 : 12 + 7 = 19. the answer is 19."
    )


def test_vocabulary_is_deterministic_and_sorted_after_specials_and_numbers():
    texts = ["b a {slot} c", "a b."]
    assert vocabulary(texts, max_int=3) == vocabulary(list(reversed(texts)), max_int=3)
    vocab = vocabulary(texts, max_int=3)
    assert vocab[:8] == ["<pad>", "<unk>", "<bos>", "<eos>", "0", "1", "2", "3"]
    words = vocab[8:]
    assert words == sorted(words) and "slot" not in words and {"a", "b", "c", "."} <= set(words)


def test_a_user_domain_file_adds_its_words(tmp_path, tok):
    (tmp_path / "astro.yaml").write_text(
        "name: astro\nrole: heldout\ndescription: Stars.\nlexicon:\n  names: [Quasarine, Pulsaro]\n"
    )
    user = build_word_tokenizer(domains=load_domains(tmp_path))
    assert unknown_words(user, "Quasarine meets Pulsaro.") == ["meets"]
    assert unknown_words(tok, "Quasarine meets Pulsaro.") == ["quasarine", "meets", "pulsaro"]


def test_unknown_word_is_an_error_naming_word_and_source(tok):
    with pytest.raises(
        UnknownWordError, match=r"data/train\.jsonl:3: word 'zorbles' .* \(and 1 more: blimps\)"
    ):
        check_words(tok, "The zorbles and blimps.", source="data/train.jsonl:3")
    check_words(tok, "The dose is raised by 3 mg.", source="x")  # known words: no error
    assert is_word_level(tok)


def test_bpe_tokenizers_are_never_checked():
    from iga.models.tokenizer import train_bpe_tokenizer

    bpe = train_bpe_tokenizer(["Step 1: 2 + 3 = 5."] * 10, vocab_size=300)
    assert not is_word_level(bpe)
    check_words(bpe, "anything goes zorbles", source="x")


def test_saved_tokenizer_loads_back_identical(tmp_path, tok):
    from iga.models.tokenizer import load_tokenizer

    tok.save_pretrained(tmp_path)
    back = load_tokenizer(tmp_path)
    assert is_word_level(back) and back.get_vocab() == tok.get_vocab()
    text = "The patient gets 7 mg. How many mg now?"
    assert back(text)["input_ids"] == tok(text)["input_ids"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["the", "dose", "is", "raised", "by", "mg", "7", "12", ".", "?", "+", "="]),
        max_size=30,
    )
)
def test_encode_then_decode_keeps_every_word(tok_words):
    tok = _TOK
    text = " ".join(tok_words)
    assert words_of(tok.decode(tok(text)["input_ids"])) == words_of(text)


_TOK = build_word_tokenizer()
