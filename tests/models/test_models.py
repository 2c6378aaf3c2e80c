"""Tokenizer, built-in students, local checkpoint loading and LoRA attachment."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.models.lora import attach_lora
from iga.models.students import STUDENTS, build_student, load_causal_lm, student_spec
from iga.models.tokenizer import load_tokenizer, train_bpe_tokenizer

TEXTS = ["Step 1: 12 mg ÷ 3 = 4 mg.", "The answer is 4.", "A patient is given 12 mg of Pelcitra."] * 30


@pytest.fixture(scope="module")
def tok():
    return train_bpe_tokenizer(TEXTS, vocab_size=320)


def test_tokenizer_round_trips_and_saves(tok, tmp_path):
    for text in [*TEXTS[:3], "unseen wörds like Zalvorin and 1,234"]:
        assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is ever unknown
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again("The answer is 4.")["input_ids"] == tok("The answer is 4.")["input_ids"]
    assert (again.pad_token, again.eos_token) == ("<pad>", "<eos>")
    with pytest.raises(ValueError, match="vocab_size must be >= 300"):
        train_bpe_tokenizer(TEXTS, vocab_size=100)


def test_student_sizes_match_their_documented_scale(tok):
    def n_params(name):
        return sum(p.numel() for p in build_student(name, tok).parameters())

    assert n_params("micro") < 0.1e6
    spec = student_spec("small")
    assert spec.hidden_size % spec.num_attention_heads == 0
    assert set(STUDENTS) >= {"micro", "tiny", "small"}
    with pytest.raises(ValueError, match="unknown student 'huge'; built-in students: micro, tiny, small"):
        student_spec("huge")


def test_same_seed_same_init(tok):
    a, b, c = (build_student("micro", tok, seed=s) for s in (1, 1, 2))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_load_local_checkpoint_and_clear_errors(tok, tmp_path):
    model = build_student("micro", tok)
    model.save_pretrained(tmp_path / "ok")
    loaded = load_causal_lm(tmp_path / "ok")
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(loaded(input_ids=x).logits, model(input_ids=x).logits)
    with pytest.raises(FileNotFoundError, match="model path does not exist"):
        load_causal_lm(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a Hugging Face checkpoint folder"):
        load_causal_lm(tmp_path / "empty")
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ValueError, match="not a causal language model"):
        load_causal_lm(tmp_path / "vit")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "ok" / "config.json").rename(tmp_path / "noweights" / "config.json")
    with pytest.raises(ValueError, match="no weights"):
        load_causal_lm(tmp_path / "noweights")


def test_lora_attaches_to_all_linear_and_warns_on_dropout_for_iga(tok):
    model = attach_lora(build_student("micro", tok), r=4, alpha=8)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert {n.split(".")[-4] for n in names} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    with pytest.warns(UserWarning, match="lora_dropout > 0 breaks IGA"):
        attach_lora(build_student("micro", tok), dropout=0.1, algorithm="iga")
    with pytest.raises(ValueError, match="LoRA rank r must be >= 1"):
        attach_lora(build_student("micro", tok), r=0)


@pytest.fixture(scope="module")
def digit_tok():
    return train_bpe_tokenizer(TEXTS + ["17 × 4 = 68. 18 - 16 = 2."] * 30, vocab_size=320, split_digits=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.sampled_from(["", " ", "= ", "mg "]))
def test_split_digits_gives_one_token_per_digit(digit_tok, numbers, prefix):
    text = prefix + " ".join(map(str, numbers))
    ids = digit_tok(text, add_special_tokens=False)["input_ids"]
    pieces = [digit_tok.decode([i]) for i in ids]
    assert digit_tok.decode(ids) == text
    digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
    assert all(len(p) == 1 for p in digits), pieces  # never a merged or space-glued number
    assert "".join(digits) == "".join(map(str, numbers))


def test_without_split_digits_bpe_merges_numbers(tok):
    pieces = [tok.decode([i]) for i in tok("Step 1: 12 mg ÷ 3 = 4 mg.")["input_ids"]]
    assert " 12" in pieces or "12" in pieces  # the contrast the option exists for
