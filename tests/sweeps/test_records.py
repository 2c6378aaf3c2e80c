"""Sweep records (iga.sweeps.records): what is kept, the done marker last, restores that never clobber a finish."""

from __future__ import annotations

import doctest
import json

import pytest

import iga.sweeps.records as records_module
from iga.sweeps.records import restore_records, save_job_record, save_records


def _job(root, job_id, *, done=True, result=None):
    job = root / "jobs" / job_id
    job.mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"job_id": job_id}))
    (job / "result.json").write_text(json.dumps(result or {"eval": {"acc": 0.5}}))
    (job / "log.jsonl").write_text('{"step": 1}\n')
    (job / "checkpoint.pt").write_bytes(b"\0" * 64)
    (job / "completions.jsonl").write_text("{}\n")
    if done:
        (job / "done").write_text("")
    return job


def test_only_finished_jobs_and_their_small_files_are_saved_and_saving_twice_copies_nothing(tmp_path):
    sweep, records = tmp_path / "sweep", tmp_path / "records"
    _job(sweep, "a")
    _job(sweep, "b", done=False)
    (sweep / "sweep.json").write_text("{}")
    assert save_records(sweep, records) == 1
    assert sorted(p.name for p in (records / "jobs").iterdir()) == ["a"]
    assert sorted(p.name for p in (records / "jobs" / "a").iterdir()) == [
        "done",
        "job.json",
        "log.jsonl",
        "result.json",
    ]
    assert (records / "sweep.json").exists()
    assert save_records(sweep, records) == 0
    assert save_job_record(sweep / "jobs" / "b", records) is False


def test_a_changed_result_is_saved_again(tmp_path):
    sweep, records = tmp_path / "sweep", tmp_path / "records"
    job = _job(sweep, "a")
    save_records(sweep, records)
    (job / "result.json").write_text(json.dumps({"eval": {"acc": 0.75}}))
    assert save_job_record(job, records) is True
    assert json.loads((records / "jobs" / "a" / "result.json").read_text()) == {"eval": {"acc": 0.75}}


def test_restore_replaces_an_unfinished_attempt_but_keeps_a_finished_job(tmp_path):
    sweep, records, work = tmp_path / "sweep", tmp_path / "records", tmp_path / "work"
    _job(sweep, "a", result={"eval": {"acc": 0.25}})
    _job(sweep, "b", result={"eval": {"acc": 0.5}})
    save_records(sweep, records)
    _job(work, "a", done=False)  # an attempt that died: its checkpoint must not resume a finished job
    _job(work, "b", result={"eval": {"acc": 0.9}})  # finished here: left alone
    assert restore_records(records, work) == 1
    assert not (work / "jobs" / "a" / "checkpoint.pt").exists()
    assert json.loads((work / "jobs" / "a" / "result.json").read_text()) == {"eval": {"acc": 0.25}}
    assert json.loads((work / "jobs" / "b" / "result.json").read_text()) == {"eval": {"acc": 0.9}}
    assert restore_records(records, work) == 0


def test_a_done_job_without_result_is_an_error_naming_the_folder(tmp_path):
    sweep = tmp_path / "sweep"
    job = _job(sweep, "a")
    (job / "result.json").unlink()
    with pytest.raises(ValueError, match=r"jobs/a: marked done but has no result.json"):
        save_records(sweep, tmp_path / "records")


def test_a_copy_interrupted_before_the_done_marker_is_not_a_finished_job(tmp_path, monkeypatch):
    sweep, records = tmp_path / "sweep", tmp_path / "records"
    _job(sweep, "a")
    real = records_module.atomic_write_bytes

    def fail_on_done(path, data):
        if path.name == "done":
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(records_module, "atomic_write_bytes", fail_on_done)
    with pytest.raises(KeyboardInterrupt):
        save_records(sweep, records)
    assert (records / "jobs" / "a" / "result.json").exists() and not (
        records / "jobs" / "a" / "done"
    ).exists()
    assert restore_records(records, tmp_path / "work") == 0


def test_docstring_example():
    assert doctest.testmod(records_module).failed == 0


def _base(folder, weights=b"w" * 32):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "base.json").write_text(json.dumps({"kind": "micro"}))
    return folder


def test_a_base_that_is_not_shipped_is_kept_once_and_copied_back_into_an_empty_cache(tmp_path):
    from iga.sweeps.records import restore_bases, save_base

    records = tmp_path / "records"
    base = _base(tmp_path / "cache" / "micro-small-0123456789abcdef")
    (base / "base_training_state.pt").write_bytes(b"stale")  # never kept
    assert save_base(base, records) is True
    kept = records / "bases" / base.name
    assert sorted(p.name for p in kept.iterdir()) == ["base.json", "model.safetensors"]
    assert save_base(base, records) is False  # kept already
    assert save_base(tmp_path / "cache" / "micro-small-unfinished", records) is False  # no base.json
    fresh = tmp_path / "fresh_cache"
    (fresh / f"{base.name}.partial").mkdir(parents=True)  # an interrupted copy is replaced
    assert restore_bases(records, fresh) == [base.name]
    assert (fresh / base.name / "model.safetensors").read_bytes() == b"w" * 32
    assert restore_bases(records, fresh) == []  # the cache has it now
    assert restore_bases(tmp_path / "no_records", fresh) == []


def test_a_cached_base_is_never_overwritten_and_the_shipped_base_is_never_kept(tmp_path):
    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_base_cache import micro_base_path
    from iga.sweeps.records import restore_bases, save_base

    records = tmp_path / "records"
    _base(records / "bases" / "micro-small-0123456789abcdef", b"kept")
    cache = tmp_path / "cache"
    mine = _base(cache / "micro-small-0123456789abcdef", b"mine")
    assert restore_bases(records, cache) == [] and (mine / "model.safetensors").read_bytes() == b"mine"
    shipped_name = micro_base_path(MicroBaseConfig()).name  # the package ships the default base
    assert save_base(_base(tmp_path / "other" / shipped_name), records) is False
    assert not (records / "bases" / shipped_name).exists()
