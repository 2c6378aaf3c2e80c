"""A tiny offline tokenizer, a tiny random-init Llama and a few isomer records for the model-side tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = {
    ("I1", "math"): ("What is 2 + 3, then doubled?", ["2 + 3 = 5.", "5 * 2 = 10."], "10"),
    ("I1", "medicine"): (
        "A patient takes 2 pills and then 3 more; the dose is doubled. How many pills?",
        ["2 + 3 = 5 pills.", "5 * 2 = 10 pills."],
        "10",
    ),
    ("I2", "math"): ("What is 4 + 4?", ["4 + 4 = 8."], "8"),
    ("I2", "finance"): (
        "An account holds 4 coins and gains 4 more. How many coins?",
        ["4 + 4 = 8 coins."],
        "8",
    ),
}


def make_record(instance: str, domain: str) -> dict:
    question, steps, answer = QUESTIONS[(instance, domain)]
    lines = [f"Step {i}: {s}" for i, s in enumerate(steps, start=1)]
    cot = "\n".join([*lines, f"The answer is {answer}."])
    # anchors: the newline closing each step line, then the start of "The answer is"
    anchors, pos = [], 0
    for line in lines:
        pos += len(line)
        anchors.append(pos)
        pos += 1
    anchors.append(cot.index("The answer is"))
    return {
        "id": f"{instance}-{domain}",
        "instance_id": instance,
        "domain": domain,
        "split": "id_test",
        "question": question,
        "gold_cot": cot,
        "answer": answer,
        "answer_type": "int",
        "anchors": anchors,
    }


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return [make_record(i, d) for i, d in QUESTIONS]


@pytest.fixture(scope="session")
def tokenizer(records: list[dict]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from iga.models.prompting import PromptFormat

    texts = [PromptFormat().text(r) for r in records] * 5
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config).eval()
