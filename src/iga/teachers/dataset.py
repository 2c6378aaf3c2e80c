"""Distillation datasets: a teacher writes a CoT for every record, wrong ones are rejected, incomplete sets dropped.

Every teacher (symbolic or a local HF model) *proposes* candidate CoTs per record; this module keeps the first one
whose answer is correct under ``score_completion(..., mode="strict")`` and drops every isomer set in which some
member got no correct candidate, because training batches are made of complete sets (a set missing a domain would
change what "per-domain gradient" means). The output folder is a complete data dir for ``iga train --data``:

* ``<split>.jsonl`` — the surviving records, unchanged except for ``teacher_cot`` (the accepted CoT) and
  ``cot_source`` (``"symbolic"`` or the teacher's path), in source order;
* every other split of the source folder, byte for byte;
* ``manifest.json`` — teacher, sampling settings, counts, source hashes and :func:`iga.utils.provenance.provenance`,
  written last, so a folder with a manifest is complete.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from iga.isomers.answers import score_completion
from iga.isomers.build import content_hash
from iga.isomers.record import REQUIRED_FIELDS, SPLITS
from iga.utils.io import (
    InputError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_canonical,
    iter_jsonl,
    sha256_bytes,
    sha256_file,
)
from iga.utils.provenance import provenance

#: Field holding the accepted CoT (the trainer's ``cot_field: teacher_cot`` reads it) and the field naming its source.
COT_FIELD = "teacher_cot"
SOURCE_FIELD = "cot_source"
#: Skeleton key used in the counts for imported records that carry no ``skeleton``.
NO_SKELETON = "(none)"


class Teacher(Protocol):
    """What :func:`distill` needs from a teacher (see :mod:`iga.teachers.symbolic` and :mod:`iga.teachers.hf`)."""

    #: Written into every output record's ``cot_source``.
    source: str

    def describe(self) -> dict:
        """Identity of the teacher for the manifest (kind, path, config hash, …)."""
        ...

    def settings(self) -> dict:
        """Decoding settings for the manifest (samples, temperature, seed, …)."""
        ...

    def propose(self, records: Sequence[Mapping], *, progress: bool = True) -> list[list[str]]:
        """Candidate CoTs for each record, in record order (the first correct one is kept)."""
        ...


@dataclass(frozen=True)
class Selection:
    """Outcome of rejection sampling over one split.

    ``accepted[i]`` is record i's first correct candidate (None: all rejected); ``kept[i]`` says whether record i
    survives, i.e. every member of its isomer set has an accepted CoT.
    """

    accepted: tuple[str | None, ...]
    kept: tuple[bool, ...]
    samples: int
    samples_correct: int


def select_cots(records: Sequence[Mapping], candidates: Sequence[Sequence[str]]) -> Selection:
    """Keep each record's first strictly correct candidate, then drop every isomer set with a rejected member.

    >>> recs = [{"instance_id": "a", "answer": "5", "answer_type": "int"},
    ...         {"instance_id": "a", "answer": "5", "answer_type": "int"},
    ...         {"instance_id": "b", "answer": "2", "answer_type": "int"}]
    >>> sel = select_cots(recs, [["The answer is 4.", "The answer is 5."], ["The answer is 5."], ["Two."]])
    >>> sel.accepted, sel.kept
    (('The answer is 5.', 'The answer is 5.', None), (True, True, False))
    """
    if len(candidates) != len(records):
        raise ValueError(
            f"the teacher returned candidates for {len(candidates)} records, expected {len(records)}"
        )
    accepted: list[str | None] = []
    samples = correct = 0
    for record, cands in zip(records, candidates, strict=True):
        verdicts = [score_completion(c, record, mode="strict").correct for c in cands]
        samples += len(cands)
        correct += sum(verdicts)
        accepted.append(next((c for c, ok in zip(cands, verdicts, strict=True) if ok), None))
    failed_sets = {r["instance_id"] for r, cot in zip(records, accepted, strict=True) if cot is None}
    kept = tuple(r["instance_id"] not in failed_sets for r in records)
    return Selection(tuple(accepted), kept, samples, correct)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def selection_counts(records: Sequence[Mapping], selection: Selection) -> dict:
    """Totals plus per-skeleton and per-domain counts of rejected records, dropped records and dropped sets.

    ``records_rejected``: no correct candidate. ``records_dropped``: not written (rejected, or a set-mate of a
    rejected record). ``acceptance_rate``: share of records with a correct candidate; ``sample_accuracy``: share
    of all candidates that were correct; ``kept_rate``: share of records written.
    """
    by_skel: dict[str, Counter] = defaultdict(Counter)
    by_dom: dict[str, Counter] = defaultdict(Counter)
    set_skeleton: dict[str, str] = {}
    for r, cot, kept in zip(records, selection.accepted, selection.kept, strict=True):
        skel = r.get("skeleton") or NO_SKELETON
        set_skeleton[r["instance_id"]] = skel
        for counter in (by_skel[skel], by_dom[r["domain"]]):
            counter["records"] += 1
            counter["records_rejected"] += cot is None
            counter["records_dropped"] += not kept
    dropped_sets = {r["instance_id"] for r, kept in zip(records, selection.kept, strict=True) if not kept}
    for iid, skel in set_skeleton.items():
        by_skel[skel]["sets"] += 1
        by_skel[skel]["sets_dropped"] += iid in dropped_sets
    n = len(records)
    rejected = sum(cot is None for cot in selection.accepted)
    kept = sum(selection.kept)
    return {
        "records": n,
        "records_accepted": n - rejected,
        "records_rejected": rejected,
        "records_kept": kept,
        "records_dropped": n - kept,
        "sets": len(set_skeleton),
        "sets_kept": len(set_skeleton) - len(dropped_sets),
        "sets_dropped": len(dropped_sets),
        "samples": selection.samples,
        "samples_correct": selection.samples_correct,
        "samples_wrong": selection.samples - selection.samples_correct,
        "acceptance_rate": _ratio(n - rejected, n),
        "sample_accuracy": _ratio(selection.samples_correct, selection.samples),
        "kept_rate": _ratio(kept, n),
        "by_skeleton": {k: dict(sorted(v.items())) for k, v in sorted(by_skel.items())},
        "by_domain": {k: dict(sorted(v.items())) for k, v in sorted(by_dom.items())},
    }


def read_split(data_dir: str | os.PathLike, split: str) -> list[dict]:
    """The records of ``<data_dir>/<split>.jsonl``, each checked for the fields a teacher needs."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"split {split!r}: {path} does not exist (splits there: {_splits_in(data_dir) or 'none'})"
        )
    records = []
    for lineno, rec in iter_jsonl(path):
        missing = [f for f in REQUIRED_FIELDS if f not in rec]
        if missing:
            raise InputError(
                f"missing (required: {', '.join(REQUIRED_FIELDS)})", file=path, line=lineno, field=missing[0]
            )
        records.append(rec)
    if not records:
        raise InputError("the split is empty; there is nothing to distil", file=path)
    return records


def _splits_in(data_dir: str | os.PathLike) -> str:
    return ", ".join(s for s in SPLITS if (Path(data_dir) / f"{s}.jsonl").exists())


def _check_out_dir(data_dir: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.resolve() == data_dir.resolve():
        raise ValueError(
            f"output folder {out_dir} is the source data folder; write the distillation dataset elsewhere"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {out_dir} is not empty; choose a new one or overwrite it (--overwrite)"
        )


def _source_info(data_dir: Path, split: str) -> dict:
    manifest_path = data_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    return {
        "data_dir": str(data_dir.resolve()),
        "content_hash": manifest.get("content_hash"),
        "generator_version": manifest.get("generator_version"),
        "split_sha256": sha256_file(data_dir / f"{split}.jsonl"),
    }


def distill(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    teacher: Teacher,
    *,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write a distillation dataset for ``split`` of ``data_dir`` into ``out_dir``; returns the manifest.

    The teacher runs before anything is written, and ``manifest.json`` is written last (atomically, like every
    file), so an interrupted call leaves no half-made dataset that looks complete. ``out_dir`` must be a new or
    empty folder unless ``overwrite`` is set, and may never be ``data_dir`` itself.
    """
    data_dir, out = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist or is not a folder")
    _check_out_dir(data_dir, out, overwrite)
    records = read_split(data_dir, split)
    selection = select_cots(records, teacher.propose(records, progress=progress))
    rows = [
        {**r, COT_FIELD: cot, SOURCE_FIELD: teacher.source}
        for r, cot, kept in zip(records, selection.accepted, selection.kept, strict=True)
        if kept
    ]
    text = "".join(dumps_canonical(r) + "\n" for r in rows)
    # An old manifest beside half-replaced splits would vouch for files it does not describe.
    (out / "manifest.json").unlink(missing_ok=True)
    atomic_write_text(out / f"{split}.jsonl", text)
    splits = {
        split: {
            "file": f"{split}.jsonl",
            "sha256": sha256_bytes(text.encode("utf-8")),
            "records": len(rows),
            "instances": len({r["instance_id"] for r in rows}),
            "teacher_cot": True,
        }
    }
    for other in SPLITS:
        src = data_dir / f"{other}.jsonl"
        if other == split or not src.exists():
            continue
        data = src.read_bytes()
        atomic_write_bytes(out / src.name, data)
        splits[other] = {
            "file": src.name,
            "sha256": sha256_bytes(data),
            "records": sum(1 for line in data.splitlines() if line.strip()),
            "teacher_cot": False,
        }
    source = _source_info(data_dir, split)
    manifest = {
        "kind": "distillation",
        "split": split,
        "cot_field": COT_FIELD,
        "teacher": teacher.describe(),
        "sampling": teacher.settings(),
        "counts": selection_counts(records, selection),
        "source": source,
        "generator_version": source["generator_version"],
        "splits": splits,
        "content_hash": content_hash({s: v["sha256"] for s, v in splits.items()}),
        "provenance": provenance(),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
