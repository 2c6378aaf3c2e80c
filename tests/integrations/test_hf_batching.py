"""Isomer-set batch sampler and domain collator: whole sets, domain-major rows, iga train's order, refusals."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.integrations.batching import DomainBatchCollator, IsomerSetBatchSampler
from iga.training.data import sets_for_step


def _rows(n_sets: int, k: int, seed: int) -> tuple[list[str], list[int]]:
    """One row per (set, domain), shuffled: the sampler must not rely on the dataset's row order."""
    rows = [(f"set-{s}", d) for s in range(n_sets) for d in range(k)]
    random.Random(seed).shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows]


@settings(max_examples=40, deadline=None)
@given(
    n_sets=st.integers(1, 12),
    k=st.integers(2, 5),
    spb=st.integers(1, 4),
    multiple=st.integers(1, 3),
    seed=st.integers(0, 5),
    shuffle=st.integers(0, 1000),
)
def test_batches_are_whole_sets_domain_major_in_iga_train_order(n_sets, k, spb, multiple, seed, shuffle):
    spb = min(spb, n_sets)
    instances, domains = _rows(n_sets, k, shuffle)
    sampler = IsomerSetBatchSampler(
        instances, domains, rows_per_batch=spb * k, seed=seed, batches_multiple_of=multiple
    )
    assert len(sampler) % multiple == 0 and len(sampler) * spb >= n_sets
    first_seen = list(dict.fromkeys(instances))  # sets are numbered by first appearance
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        for b, rows in enumerate(sampler):
            assert len(rows) == spb * k == sampler.batch_size
            assert [domains[i] for i in rows] == [d for d in range(k) for _ in range(spb)]  # domain-major
            chosen = sets_for_step(n_sets, spb, epoch * len(sampler) + b, seed)
            for d in range(k):  # within a domain block: the chosen sets in iga train's order
                block = rows[d * spb : (d + 1) * spb]
                assert [instances[i] for i in block] == [first_seen[s] for s in chosen]


def test_sampler_reads_a_datasets_column_table():
    from datasets import Dataset

    ds = Dataset.from_dict(
        {"instance_id": ["a", "a", "b", "b"], "domain_id": [1, 0, 0, 1], "x": [0, 1, 2, 3]}
    )
    sampler = IsomerSetBatchSampler.from_dataset(ds, rows_per_batch=2)
    assert sampler.num_domains == 2 and sampler.sets == [[1, 0], [2, 3]]


@pytest.mark.parametrize(
    ("instances", "domains", "rows", "match"),
    [
        (["a", "a", "b"], [0, 1, 0], 2, "'b' is missing domain_id"),
        (["a", "a", "a"], [0, 1, 1], 2, "'a' has domain_id 1 twice"),
        (["a", "a", "b", "b"], [0, 1, 0, 1], 3, "must be a multiple of the 2 domains"),
        (["a", "a"], [0, 1], 4, "needs 2 isomer sets, but the dataset has only 1"),
        (["a", "a"], [0, 0], 2, "K >= 2"),
        (["a"], [0, 1], 2, "one entry per row"),
    ],
)
def test_sampler_refuses_incomplete_or_misfit_data(instances, domains, rows, match):
    with pytest.raises(ValueError, match=match):
        IsomerSetBatchSampler(instances, domains, rows_per_batch=rows)


def test_sampler_names_missing_columns():
    from datasets import Dataset

    with pytest.raises(ValueError, match=r"no column\(s\) \['domain_id'\]"):
        IsomerSetBatchSampler.from_dataset(Dataset.from_dict({"instance_id": ["a"]}), rows_per_batch=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=10))
def test_collator_sorts_rows_by_domain_stably_and_pads(spec):
    examples = [
        {"input_ids": [10 * i + t for t in range(n)], "labels": [-100] + [10 * i + t for t in range(1, n)],
         "domain_id": d, "prompt": "text columns are dropped"}
        for i, (d, n) in enumerate(spec)
    ]  # fmt: skip
    out = DomainBatchCollator(pad_token_id=0)(examples)
    order = sorted(range(len(spec)), key=lambda i: spec[i][0])  # Python's sort is stable
    assert out["domain_ids"].tolist() == [spec[i][0] for i in order]
    assert set(out) == {"input_ids", "attention_mask", "labels", "domain_ids"}
    width = max(n for _, n in spec)
    assert out["input_ids"].shape == (len(spec), width)
    for row, i in enumerate(order):
        n = spec[i][1]
        assert out["input_ids"][row, :n].tolist() == examples[i]["input_ids"]
        assert out["labels"][row, :n].tolist() == examples[i]["labels"]
        assert out["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert out["labels"][row, n:].eq(-100).all() and out["input_ids"][row, n:].eq(0).all()


def test_collator_delegates_padding_and_keeps_domain_ids():
    seen = []

    def pad_left(rows):
        seen.append(rows)
        width = max(len(r["input_ids"]) for r in rows)
        ids = [[0] * (width - len(r["input_ids"])) + r["input_ids"] for r in rows]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)}

    out = DomainBatchCollator(pad_left)([{"input_ids": [5], "domain_id": 1, "prompt": "p"},
                                         {"input_ids": [6, 7], "domain_id": 0}])  # fmt: skip
    assert seen == [[{"input_ids": [6, 7]}, {"input_ids": [5]}]]  # token fields only, domain-major
    assert out["domain_ids"].tolist() == [0, 1] and out["input_ids"].tolist() == [[6, 7], [0, 5]]


def test_collator_refuses_padding_free_and_missing_domain():
    from transformers import DataCollatorWithFlattening

    rows = [
        {"input_ids": [1, 2], "labels": [1, 2], "domain_id": 0},
        {"input_ids": [3], "labels": [3], "domain_id": 1},
    ]
    with pytest.raises(ValueError, match="returned 1 row\\(s\\) for 2 examples"):
        DomainBatchCollator(DataCollatorWithFlattening())(rows)
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        DomainBatchCollator(pad_token_id=0)([{"input_ids": [1]}])
    with pytest.raises(ValueError, match="pad_token_id"):
        DomainBatchCollator()


@pytest.mark.parametrize("name", ["batching", "callbacks", "datasets", "trl"])
def test_docstring_examples(name):
    import doctest
    import importlib

    if name == "trl":
        pytest.importorskip("trl")
    result = doctest.testmod(importlib.import_module(f"iga.integrations.{name}"))
    assert result.attempted > 0 and result.failed == 0
