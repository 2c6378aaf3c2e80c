"""Fixtures for trainer tests: a synthetic isomer dataset and a micro pretrained base built in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import DOMAINS, synthetic_records, write_dataset


@pytest.fixture(scope="session")
def micro_base(tmp_path_factory) -> Path:
    """A micro Llama + BPE tokenizer saved as a base folder (what `iga pretrain` writes), no pretraining."""
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("base")
    texts = [
        r["question"] + "\n" + r["gold_cot"] for r in synthetic_records(20, domains=(*DOMAINS, "finance"))
    ]
    tok = train_bpe_tokenizer(texts * 5, vocab_size=320)
    model = build_student("micro", tok, seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")
