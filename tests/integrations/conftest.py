"""Fixtures for the Hugging Face integration tests: short synthetic isomer sets and a micro base built in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOMAINS = ("math", "medicine", "law", "science")
NOUNS = {"math": "units", "medicine": "tablets", "law": "fines", "science": "grams"}


def _records(n_sets: int) -> list[dict]:
    # Answers of different lengths per set and domain, so batches are ragged and domains hold different token
    # counts (the per-domain mean then differs from the token-pooled mean).
    records = []
    for i in range(n_sets):
        a, b = i % 7 + 1, (3 * i) % 5 + 1
        for j, d in enumerate(DOMAINS):
            noun = NOUNS[d]
            extra = " Then check it." * ((i + j) % 3)
            cot = f"Step 1: {a} + {b} = {a + b} {noun}.{extra}\nThe answer is {a + b}."
            records.append({
                "id": f"train-{i}-{d}", "instance_id": f"train-{i}", "skeleton": "S01_arith_chain",
                "family": "IsoArith", "domain": d, "split": "train",
                "question": f"There are {a} {noun} and {b} more {noun}. How many {noun}?",
                "gold_cot": cot, "answer": str(a + b), "answer_type": "int", "label_space": [],
                "anchors": [cot.index("\n"), cot.index("The answer")],
            })  # fmt: skip
    return records


@pytest.fixture(scope="session")
def iso_records() -> list[dict]:
    return _records(6)


@pytest.fixture(scope="session")
def iso_data(tmp_path_factory, iso_records) -> Path:
    """A data folder as `iga data build` writes it (train split only)."""
    root = tmp_path_factory.mktemp("iso_data")
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in iso_records))
    (root / "manifest.json").write_text(json.dumps({"content_hash": "synthetic", "seed": 0}))
    return root


@pytest.fixture(scope="session")
def micro_base(tmp_path_factory, iso_records) -> Path:
    """A random micro Llama + BPE tokenizer saved as a local checkpoint folder."""
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("micro_base")
    tok = train_bpe_tokenizer([r["question"] + "\n" + r["gold_cot"] for r in iso_records] * 5, vocab_size=320)
    build_student("micro", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out
