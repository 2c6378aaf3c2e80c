"""The studies' tests. A study is a script in ``studies/`` (outside the package), imported here as a top-level
module (``import noise_floor``), as ``python studies/noise_floor.py`` runs it; the trainer fixtures come from
tests/training/train_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
for _folder in (_ROOT / "studies", _ROOT / "tests" / "training"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from train_helpers import save_micro_base, write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def micro_base(tmp_path_factory) -> Path:
    """A micro Llama + BPE tokenizer saved as a base folder (what `iga pretrain` writes), no pretraining."""
    return save_micro_base(tmp_path_factory.mktemp("base"))


@pytest.fixture()
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")
