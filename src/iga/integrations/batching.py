"""Isomer-set batches for the Hugging Face ``Trainer``: a batch sampler over complete sets and a collator that
keeps ``domain_id`` and lays the rows out domain-major.

A dataset row is one member of an isomer set (columns ``instance_id`` and ``domain_id``, see
:mod:`iga.integrations.datasets`). :class:`IsomerSetBatchSampler` yields row indices of whole sets only — a batch
missing a domain would silently change what "per-domain gradient" means — in the same order as ``iga train``:
batch ``b`` of epoch ``e`` holds the sets that :func:`iga.training.data.sets_for_step` picks for step
``e·len(sampler) + b`` with the same seed. :class:`DomainBatchCollator` pads the token fields (or delegates to any
collator, e.g. TRL's) and adds ``domain_ids``; its rows are sorted by domain (stable), which is the fast path of
the per-domain gradient hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from iga.training.data import sets_for_step

#: The per-row fields a collator pads; everything else in a row (text, ids, metadata) is dropped here.
TOKEN_FIELDS = ("input_ids", "labels", "attention_mask")


class IsomerSetBatchSampler:
    """Batches of complete isomer sets, rows domain-major (all sets' domain-0 rows, then domain 1, ...).

    Args:
        instance_ids: per dataset row, the id of its isomer set.
        domain_ids: per dataset row, its domain index ``0..K-1``.
        rows_per_batch: rows per batch (the Trainer's ``per_device_train_batch_size``), a multiple of K.
        num_domains: K; default ``max(domain_ids) + 1``.
        seed: the set order is a pure function of ``(seed, step)`` (``iga train``'s order for the same seed).
        batches_multiple_of: round the epoch length up to a multiple of this — the Trainer's
            ``gradient_accumulation_steps`` × ``world_size``, so that no optimizer step is cut short at an epoch's
            end, the micro-batches tile ``iga train``'s steps exactly, and under DDP (Accelerate deals batch ``b``
            to rank ``b mod W``) every rank runs the same number of optimizer steps.

    Sets are numbered by first appearance in the dataset. Every set must hold each of the K domains exactly once.

    Example:
        >>> s = IsomerSetBatchSampler(["a", "a", "b", "b"], [0, 1, 0, 1], rows_per_batch=4)
        >>> len(s), s.sets_per_batch, sorted(next(iter(s)))
        (1, 2, [0, 1, 2, 3])
    """

    drop_last = False  # read by Accelerate's BatchSamplerShard

    def __init__(
        self,
        instance_ids: Sequence[str],
        domain_ids: Sequence[int],
        *,
        rows_per_batch: int,
        num_domains: int | None = None,
        seed: int = 0,
        batches_multiple_of: int = 1,
    ) -> None:
        if len(instance_ids) != len(domain_ids):
            raise ValueError(
                f"instance_ids ({len(instance_ids)}) and domain_ids ({len(domain_ids)}) must have one entry per row"
            )
        if not domain_ids:
            raise ValueError("the training dataset is empty: no isomer set to batch")
        ids = [int(d) for d in domain_ids]
        k_dom = num_domains if num_domains is not None else max(ids) + 1
        if k_dom < 2 or min(ids) < 0 or max(ids) >= k_dom:
            raise ValueError(
                f"domain_id must hold values 0..K-1 with K >= 2 domains; got values {min(ids)}..{max(ids)} "
                f"(num_domains={num_domains})"
            )
        if isinstance(rows_per_batch, bool) or not isinstance(rows_per_batch, int) or rows_per_batch < k_dom:
            raise ValueError(f"rows_per_batch must be an int >= K={k_dom}, got {rows_per_batch!r}")
        if rows_per_batch % k_dom:
            raise ValueError(
                f"rows_per_batch (per_device_train_batch_size) = {rows_per_batch} must be a multiple of the "
                f"{k_dom} domains: a batch holds whole isomer sets, one row per domain"
            )
        if (
            isinstance(batches_multiple_of, bool)
            or not isinstance(batches_multiple_of, int)
            or batches_multiple_of < 1
        ):
            raise ValueError(f"batches_multiple_of must be an int >= 1, got {batches_multiple_of!r}")
        self.num_domains, self.batch_size, self.seed = k_dom, rows_per_batch, seed
        self.batches_multiple_of = batches_multiple_of
        self.sets_per_batch = rows_per_batch // k_dom
        self.sets = _group_rows(instance_ids, ids, k_dom)
        if self.sets_per_batch > len(self.sets):
            raise ValueError(
                f"a batch of {rows_per_batch} rows needs {self.sets_per_batch} isomer sets, but the dataset has only "
                f"{len(self.sets)}; lower per_device_train_batch_size"
            )
        self.epoch = 0

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        *,
        rows_per_batch: int,
        seed: int = 0,
        num_domains: int | None = None,
        batches_multiple_of: int = 1,
        instance_column: str = "instance_id",
        domain_column: str = "domain_id",
    ) -> IsomerSetBatchSampler:
        """Read the two columns from a ``datasets.Dataset`` (or any indexable dataset of dict rows)."""
        names = getattr(dataset, "column_names", None)
        if names is not None:
            missing = [c for c in (instance_column, domain_column) if c not in names]
            if missing:
                raise ValueError(
                    f"the training dataset has no column(s) {missing} (columns: {sorted(names)}); build it with "
                    "iga.integrations.isomer_dataset(...) or add them, one row per isomer-set member"
                )
            instances, domains = list(dataset[instance_column]), list(dataset[domain_column])
        else:
            rows = [dataset[i] for i in range(len(dataset))]
            try:
                instances = [r[instance_column] for r in rows]
                domains = [r[domain_column] for r in rows]
            except KeyError as e:
                raise ValueError(f"every training row needs {instance_column!r} and {domain_column!r}") from e
        return cls(
            instances,
            domains,
            rows_per_batch=rows_per_batch,
            num_domains=num_domains,
            seed=seed,
            batches_multiple_of=batches_multiple_of,
        )

    @property
    def num_sets(self) -> int:
        return len(self.sets)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (through Accelerate) at the start of every epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        batches = math.ceil(self.num_sets / self.sets_per_batch)
        return math.ceil(batches / self.batches_multiple_of) * self.batches_multiple_of

    def batch(self, step: int) -> list[int]:
        """Row indices of batch number ``step`` of the whole stream (domain-major)."""
        chosen = sets_for_step(self.num_sets, self.sets_per_batch, step, self.seed)
        return [self.sets[s][k] for k in range(self.num_domains) for s in chosen]

    def __iter__(self) -> Iterator[list[int]]:
        start = self.epoch * len(self)
        for b in range(len(self)):
            yield self.batch(start + b)


def _group_rows(instance_ids: Sequence[str], domain_ids: Sequence[int], k_dom: int) -> list[list[int]]:
    slots: dict[str, list[int | None]] = {}
    for row, (iid, dom) in enumerate(zip(instance_ids, domain_ids, strict=True)):
        members = slots.setdefault(str(iid), [None] * k_dom)
        if members[dom] is not None:
            raise ValueError(f"isomer set {iid!r} has domain_id {dom} twice (rows {members[dom]} and {row})")
        members[dom] = row
    sets = []
    for iid, members in slots.items():
        missing = [k for k, r in enumerate(members) if r is None]
        if missing:
            raise ValueError(
                f"isomer set {iid!r} is missing domain_id(s) {missing}: every training set needs all {k_dom} "
                "domains (a preprocessing step, e.g. TRL dropping rows truncated to no label, may have removed them)"
            )
        sets.append([int(r) for r in members])  # type: ignore[arg-type]
    return sets


class DomainBatchCollator:
    """Collate isomer rows into a padded batch with ``domain_ids``, rows sorted by domain (stable).

    Args:
        collate: optional collator for the token fields (:data:`TOKEN_FIELDS`); it must return one row per
            example (packing / padding-free collators are refused). Default: right padding with ``pad_token_id``,
            labels padded with -100, an attention mask, and ``labels = input_ids`` when a row has no labels.
        pad_token_id: needed by the default padding.
        domain_key: the per-row domain column.

    Example:
        >>> c = DomainBatchCollator(pad_token_id=0)
        >>> out = c([{"input_ids": [5, 6], "labels": [-100, 6], "domain_id": 1},
        ...          {"input_ids": [7], "labels": [7], "domain_id": 0}])
        >>> out["domain_ids"].tolist(), out["input_ids"].tolist(), out["labels"].tolist()
        ([0, 1], [[7, 0], [5, 6]], [[7, -100], [-100, 6]])
    """

    def __init__(
        self,
        collate: Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None = None,
        *,
        pad_token_id: int | None = None,
        domain_key: str = "domain_id",
    ) -> None:
        if collate is None and pad_token_id is None:
            raise ValueError("DomainBatchCollator needs pad_token_id (or a collate function that pads)")
        self.collate, self.pad_token_id, self.domain_key = collate, pad_token_id, domain_key

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not examples:
            raise ValueError("DomainBatchCollator got an empty batch")
        try:
            domains = [int(ex[self.domain_key]) for ex in examples]
        except KeyError:
            raise ValueError(
                f"a batch row has no {self.domain_key!r} field (keys: {sorted(examples[0])}); keep the column with "
                "TrainingArguments(remove_unused_columns=False)"
            ) from None
        order = sorted(range(len(examples)), key=domains.__getitem__)  # sorted() is stable
        tokens = [{k: examples[i][k] for k in TOKEN_FIELDS if k in examples[i]} for i in order]
        batch = dict(self.collate(tokens)) if self.collate is not None else self._pad(tokens)
        rows = batch["input_ids"].shape[0]
        if rows != len(examples):
            raise ValueError(
                f"the collator returned {rows} row(s) for {len(examples)} examples: packed / padding-free batches "
                "erase the row-to-domain attribution that per-domain gradients need; use a padding collator "
                "(padding_free=False, packing=False)"
            )
        batch["domain_ids"] = torch.tensor([domains[i] for i in order], dtype=torch.long)
        return batch

    def _pad(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), int(self.pad_token_id), dtype=torch.long)  # type: ignore[arg-type]
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids = torch.as_tensor(r["input_ids"], dtype=torch.long)
            lab = torch.as_tensor(r.get("labels", r["input_ids"]), dtype=torch.long)
            if lab.shape != ids.shape:
                raise ValueError(f"row {i}: labels has {lab.numel()} tokens but input_ids has {ids.numel()}")
            input_ids[i, : ids.numel()] = ids
            labels[i, : ids.numel()] = lab
            attention[i, : ids.numel()] = (
                1 if "attention_mask" not in r else torch.as_tensor(r["attention_mask"])
            )
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
