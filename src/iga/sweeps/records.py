"""A sweep's finished jobs kept apart from its working folder, so that a long study outlives the machine it ran on.

A study of many CPU-hours runs across sessions whose working folders (checkpoints, data, completions) are lost;
what the tables need of a finished job is small. ``iga sweep SPEC --out DIR --records RECORDS`` copies back every
job ``RECORDS`` holds that ``DIR`` has not finished, before planning (so those jobs count as done and are skipped),
and copies each job into ``RECORDS`` as it finishes. ``RECORDS`` is itself a sweep folder that ``iga collect`` and
``iga plot`` read::

    RECORDS/sweep.json
    RECORDS/jobs/<job_id>/{job.json, config.json, result.json, log.jsonl, done}

Checkpoints, adapters, completions and TensorBoard events stay behind (a micro-regime job keeps ~25 KB of its
3.5 MB). The ``done`` marker is copied last, so an interrupted copy is never read as a finished job.

A micro-regime sweep whose skill base is not shipped with the package (another student, another base config) keeps
that base too, once: ``RECORDS/bases/<name>/`` (:func:`save_base`), copied into the base cache before planning
(:func:`restore_bases`), so that another machine trains from the same weights instead of retraining them (the
base of a larger student takes hours on 2 cores, and a retrained one would be another base).

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> sweep, records = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()) / "records"
    >>> job = sweep / "jobs" / "abc123"
    >>> job.mkdir(parents=True)
    >>> for name in ("job.json", "result.json", "done", "checkpoint.pt"):
    ...     _ = (job / name).write_text("{}")
    >>> save_records(sweep, records)
    1
    >>> sorted(p.name for p in (records / "jobs" / "abc123").iterdir())
    ['done', 'job.json', 'result.json']
    >>> restore_records(records, Path(tempfile.mkdtemp()))
    1
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from iga.runs.folder import CONFIG_NAME, RESULT_NAME
from iga.sweeps.sweep import DONE_NAME, JOB_NAME
from iga.training.outputs import LOG_NAME
from iga.utils.io import atomic_write_bytes

#: What a finished job keeps, in copy order: the ``done`` marker last.
RECORD_FILES = (JOB_NAME, CONFIG_NAME, RESULT_NAME, LOG_NAME, DONE_NAME)


def _copy_job(source: Path, target: Path) -> bool:
    """Copy ``source``'s record files into ``target`` unless ``target`` already holds the same; True if copied."""
    if not (source / RESULT_NAME).exists():
        raise ValueError(f"{source}: marked done but has no {RESULT_NAME}")
    if all(
        (target / name).exists() and (target / name).read_bytes() == (source / name).read_bytes()
        for name in RECORD_FILES
        if (source / name).exists()
    ):
        return False
    target.mkdir(parents=True, exist_ok=True)
    (target / DONE_NAME).unlink(missing_ok=True)  # not finished until every file is in
    for name in RECORD_FILES:
        if (source / name).exists():
            atomic_write_bytes(target / name, (source / name).read_bytes())
    return True


def _finished(sweep_dir: Path) -> list[Path]:
    jobs = sweep_dir / "jobs"
    return sorted(p for p in jobs.iterdir() if (p / DONE_NAME).exists()) if jobs.is_dir() else []


def save_records(sweep_dir: str | os.PathLike, records_dir: str | os.PathLike) -> int:
    """Copy every finished job of ``sweep_dir`` (and its ``sweep.json``) into ``records_dir``; the number copied."""
    sweep_dir, records_dir = Path(sweep_dir), Path(records_dir)
    copied = sum(_copy_job(job, records_dir / "jobs" / job.name) for job in _finished(sweep_dir))
    if (sweep_dir / "sweep.json").exists():
        records_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep_dir / "sweep.json", records_dir / "sweep.json")
    return copied


def save_job_record(job_dir: str | os.PathLike, records_dir: str | os.PathLike) -> bool:
    """Copy one finished job folder into ``records_dir/jobs/``; False when it is not finished or already there."""
    job_dir = Path(job_dir)
    if not (job_dir / DONE_NAME).exists():
        return False
    return _copy_job(job_dir, Path(records_dir) / "jobs" / job_dir.name)


def restore_records(records_dir: str | os.PathLike, sweep_dir: str | os.PathLike) -> int:
    """Copy into ``sweep_dir`` every job ``records_dir`` holds that ``sweep_dir`` has not finished; the number.

    An unfinished attempt's folder is replaced (its checkpoint would resume a job that is already done).
    """
    records_dir, sweep_dir = Path(records_dir), Path(sweep_dir)
    restored = 0
    for job in _finished(records_dir):
        target = sweep_dir / "jobs" / job.name
        if (target / DONE_NAME).exists():
            continue
        shutil.rmtree(target, ignore_errors=True)
        _copy_job(job, target)
        restored += 1
    return restored


#: The folder of ``RECORDS`` that holds kept skill bases, one sub-folder per base (its cache name).
BASES_DIR = "bases"


def _copy_tree_atomically(source: Path, target: Path) -> None:
    """Copy the folder ``source`` to ``target`` through ``target.partial`` and one rename."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    os.replace(partial, target)


def save_base(base_dir: str | os.PathLike, records_dir: str | os.PathLike) -> bool:
    """Keep the micro skill base at ``base_dir`` in ``records_dir/bases/`` unless the package ships it or it is
    kept already; True if copied. Only finished bases (with their ``base.json``) are kept."""
    from iga.models.micro_base import BASE_MARKER, CHECKPOINT
    from iga.models.micro_base_cache import shipped_base

    base_dir = Path(base_dir)
    target = Path(records_dir) / BASES_DIR / base_dir.name
    if not (base_dir / BASE_MARKER).is_file() or shipped_base(base_dir.name) is not None:
        return False
    if (target / BASE_MARKER).is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy_tree_atomically(base_dir, target)
    (target / CHECKPOINT).unlink(missing_ok=True)
    return True


def restore_bases(records_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> list[str]:
    """Copy every base kept in ``records_dir/bases/`` that ``cache_dir`` lacks into it; the names copied."""
    from iga.models.micro_base import BASE_MARKER

    kept = Path(records_dir) / BASES_DIR
    if not kept.is_dir():
        return []
    restored = []
    for base in sorted(p for p in kept.iterdir() if (p / BASE_MARKER).is_file()):
        target = Path(cache_dir) / base.name
        if (target / BASE_MARKER).is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        _copy_tree_atomically(base, target)
        restored.append(base.name)
    return restored
