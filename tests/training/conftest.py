"""Fixtures for trainer tests: a synthetic isomer dataset and a micro pretrained base built in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import save_micro_base, write_dataset


@pytest.fixture(scope="session")
def micro_base(tmp_path_factory) -> Path:
    """A micro Llama + BPE tokenizer saved as a base folder (what `iga pretrain` writes), no pretraining."""
    return save_micro_base(tmp_path_factory.mktemp("base"))


@pytest.fixture()
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")
