"""``iga collect``'s "Cost" table: sums of the job time the finished runs recorded (iga.sweeps.sweep_cost)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import iga.sweeps.sweep_cost as sweep_cost_module
from iga.sweeps.collect import collect
from iga.sweeps.sweep_cost import cost_table, sweep_cost
from iga.sweeps.sweep_results import JobRecord, load_finished
from iga.utils.io import InputError


def _job(
    root: Path, job_id: str, group: str, *, train: float | None, gen: float | None, done: bool = True
) -> None:
    folder = root / "jobs" / job_id
    folder.mkdir(parents=True)
    entry = {
        "job_id": job_id,
        "group": group,
        "algorithm": group,
        "seed": 0,
        "hparams_seed": 0,
        "ablation": None,
    }
    (folder / "job.json").write_text(json.dumps(entry))
    summary = {"id_accuracy": 0.5, "ood_accuracy": 0.4, "gap": 0.1, "by_family": {}}
    result = {"train": {"train_seconds": train, "step_time_s": 1.0}, "eval": {"summary": summary}}
    if gen is not None:
        result["eval"]["generation_seconds"] = gen
    (folder / "result.json").write_text(json.dumps(result))
    if done:
        (folder / "done").write_text("")


def test_sums_per_group_and_total_count_every_finished_job_only(tmp_path: Path) -> None:
    _job(tmp_path, "a", "erm", train=600.0, gen=120.0)
    _job(tmp_path, "b", "erm", train=300.0, gen=60.0)
    _job(tmp_path, "c", "iga", train=900.0, gen=None)  # older result.json without generation_seconds
    _job(tmp_path, "d", "iga", train=10_000.0, gen=10_000.0, done=False)  # unfinished: never counted
    records, finished = load_finished(tmp_path)
    cost = sweep_cost(records)  # the unfinished record is filtered by its flag, not by the caller
    assert cost == sweep_cost(finished)
    assert list(cost["groups"]) == ["erm", "iga"]
    erm = cost["groups"]["erm"]
    assert (erm["jobs"], erm["train_minutes"], erm["generation_minutes"], erm["job_minutes"]) == (
        2,
        15.0,
        3.0,
        18.0,
    )
    assert erm["per_job_minutes"] == 9.0
    iga = cost["groups"]["iga"]
    assert (iga["jobs"], iga["job_minutes"], iga["jobs_without_generation_seconds"]) == (1, 15.0, 1)
    total = cost["total"]
    assert (total["jobs"], total["job_minutes"], total["jobs_without_generation_seconds"]) == (3, 33.0, 1)


def test_table_has_a_row_per_group_a_total_and_says_what_is_missing(tmp_path: Path) -> None:
    _job(tmp_path, "a", "erm", train=600.0, gen=120.0)
    _job(tmp_path, "c", "iga", train=900.0, gen=None)
    table = cost_table(sweep_cost(load_finished(tmp_path)[1]))
    assert table.title == "Cost"
    assert [row[0] for row in table.rows] == ["erm", "iga", "**total**"]
    assert table.rows[-1][1:] == ["2", "25.0", "2.0", "27.0", "13.5"]
    assert "0.45 job-hours" in table.notes[0]
    assert "1 job field(s) missing" in table.notes[1]


def test_collect_writes_cost_json_and_the_table(tmp_path: Path) -> None:
    _job(tmp_path, "a", "erm", train=600.0, gen=120.0)
    out = collect(tmp_path, out_dir=tmp_path / "out", formats=("md",))
    assert json.loads((tmp_path / "out" / "cost.json").read_text()) == out.cost
    assert out.cost["total"]["job_minutes"] == 12.0
    assert out.tables[-1].title == "Cost"
    assert "## Cost" in out.markdown and "| **total** | 1 | 10.0 | 2.0 | 12.0 | 12.0 |" in out.markdown


def test_a_non_numeric_time_names_the_file_and_field(tmp_path: Path) -> None:
    _job(tmp_path, "a", "erm", train=600.0, gen=120.0)
    path = tmp_path / "jobs" / "a" / "result.json"
    result = json.loads(path.read_text())
    result["train"]["train_seconds"] = "ten minutes"
    path.write_text(json.dumps(result))
    with pytest.raises(InputError, match=r"train\.train_seconds") as err:
        sweep_cost(load_finished(tmp_path)[1])
    assert "result.json" in str(err.value)


def test_no_finished_job_gives_zero_totals() -> None:
    cost = sweep_cost([JobRecord("x", "erm", 0, 0, Path("."), finished=False)])
    assert cost["groups"] == {} and cost["total"]["jobs"] == 0 and cost["total"]["per_job_minutes"] is None


def test_docstring_examples() -> None:
    assert doctest.testmod(sweep_cost_module).failed == 0
