"""Loading built splits as Hugging Face datasets (variable-shape fields stored as JSON strings)."""

from __future__ import annotations

import json

import pytest

from iga.isomers import ConfigError, build_suite
from iga.isomers.hf import JSON_FIELDS, load_split
from iga.isomers.record import RECORD_FIELDS, SPLITS
from iga.utils.io import read_jsonl

pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    build_suite("tiny", out, seed=0)
    return out


def test_every_split_loads_with_one_schema_and_round_trips(suite):
    schemas = set()
    for split in SPLITS:
        ds = load_split(suite, split)
        rows = read_jsonl(suite / f"{split}.jsonl")
        assert len(ds) == len(rows) and ds.column_names == list(RECORD_FIELDS)
        schemas.add(repr(ds.features))
        for got, want in zip(ds, rows, strict=True):
            for name in RECORD_FIELDS:
                value = json.loads(got[name]) if name in JSON_FIELDS else got[name]
                assert value == want.get(name), (split, name)  # teacher_answer: only in noisy suites
    assert len(schemas) == 1


def test_a_file_path_works_and_a_bad_split_is_an_error(suite):
    assert len(load_split(suite / "val.jsonl")) == len(read_jsonl(suite / "val.jsonl"))
    with pytest.raises(ConfigError, match=r"split: 'dev' is not one of train"):
        load_split(suite, "dev")
