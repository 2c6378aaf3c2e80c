"""Load a built split as a Hugging Face ``datasets.Dataset`` (``datasets`` is imported on call).

``params``, ``difficulty``, ``canonical_trace`` and ``shortcut`` change shape from skeleton to skeleton (or are
null), which breaks Arrow's schema inference and makes splits disagree on their features, so they are stored as
canonical JSON strings; every split gets the same explicit features. Decode with ``json.loads``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from iga.isomers.errors import ConfigError
from iga.isomers.record import RECORD_FIELDS, SPLITS
from iga.utils.io import dumps_canonical, iter_jsonl

if TYPE_CHECKING:
    import datasets

#: Fields stored as JSON strings.
JSON_FIELDS = ("params", "difficulty", "canonical_trace", "shortcut")


def features() -> datasets.Features:
    """The fixed schema of every split."""
    from datasets import Features, Sequence, Value

    spec = {name: Value("string") for name in RECORD_FIELDS}
    spec["anchors"] = Sequence(Value("int64"))
    spec["label_space"] = Sequence(Value("string"))
    spec["seed"] = Value("int64")
    return Features(spec)


def load_split(path_or_dir: str | os.PathLike, split: str | None = None) -> datasets.Dataset:
    """A split of a built suite: ``load_split("runs/data", "train")`` or ``load_split("runs/data/train.jsonl")``."""
    from datasets import Dataset

    path = Path(path_or_dir)
    if path.is_dir():
        if split not in SPLITS:
            raise ConfigError(
                f"split: {split!r} is not one of {', '.join(SPLITS)} (needed when given a directory)"
            )
        path = path / f"{split}.jsonl"
    rows = []
    for _, record in iter_jsonl(path):
        row = {name: record.get(name) for name in RECORD_FIELDS}
        for name in JSON_FIELDS:
            row[name] = dumps_canonical(row[name])
        rows.append(row)
    return Dataset.from_list(rows, features=features())
