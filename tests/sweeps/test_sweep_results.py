"""The reader, model selection, mean ± 95% CI and group order shared by ``iga collect`` and ``iga plot``."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path
from typing import Any

import pytest

import iga.sweeps.sweep_results as sweep_results_module
from iga.sweeps.sweep_results import (
    UNKNOWN,
    ablation_sort_key,
    by_group,
    finite,
    group_order,
    load_finished,
    load_sweep,
    mean_ci,
    select_models,
    shared_hparam,
    t_quantile_975,
)

# Closed forms of t(0.975, df): df=1 is the Cauchy quantile tan(0.475π); df=2 is 0.95·√(2/(4p(1-p))), p=0.975.
T_DF1 = math.tan(0.475 * math.pi)
T_DF2 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))


def write_job(
    root: Path,
    job_id: str,
    group: str,
    seed: int,
    *,
    ood: float | None = 0.5,
    val: float | None = None,
    hparams_seed: int = 0,
    hparams: dict[str, Any] | None = None,
    ablation: dict[str, Any] | None = None,
    log: list[dict[str, Any]] | None = None,
    done: bool = True,
) -> Path:
    """One job folder as `iga sweep` leaves it (job.json, result.json, optional log.jsonl, done)."""
    job_dir = root / "jobs" / job_id
    job_dir.mkdir(parents=True)
    entry = {
        "job_id": job_id,
        "group": group,
        "algorithm": group.split(":")[0],
        "seed": seed,
        "hparams_seed": hparams_seed,
        "hparams": hparams or {},
        "ablation": ablation,
    }
    (job_dir / "job.json").write_text(json.dumps(entry))
    summary = {"id_accuracy": 0.6, "ood_accuracy": ood, "val_accuracy": val}
    (job_dir / "result.json").write_text(json.dumps({"eval": {"summary": summary}}))
    if log is not None:
        (job_dir / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))
    if done:
        (job_dir / "done").write_text("")
    return job_dir


# ---- Student-t quantile and mean ± CI ----------------------------------------------------------------------


def test_t_quantile_matches_closed_forms_and_the_table():
    assert t_quantile_975(1) == pytest.approx(T_DF1, rel=1e-10)
    assert t_quantile_975(2) == pytest.approx(T_DF2, rel=1e-10)
    # df=4 closed form (Hill 1970): a = 4p(1-p), q = cos(arccos(√a)/3)/√a, t = 2√(q-1).
    a = 4 * 0.975 * 0.025
    q = math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a)
    assert t_quantile_975(4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-10)
    # 3.182446305284 is the textbook value for df=3; the rest is the 3-decimal row of any t table.
    assert t_quantile_975(3) == pytest.approx(3.182446305284, rel=1e-9)
    assert [round(t_quantile_975(df), 3) for df in (1, 2, 3, 4, 9, 29)] == [
        12.706,
        4.303,
        3.182,
        2.776,
        2.262,
        2.045,
    ]


@pytest.mark.parametrize("df", [0, -1, 2.0, True])
def test_t_quantile_rejects_what_is_not_a_positive_integer(df):
    with pytest.raises(ValueError, match="integer >= 1"):
        t_quantile_975(df)


def test_mean_ci_by_hand():
    # 0.2, 0.3, 0.4: mean 0.3, sd 0.1, half-width t(0.975, 2)·0.1/√3 = 0.2484; the null is skipped.
    r = mean_ci([0.2, None, 0.3, 0.4])
    assert r.n == 3
    assert r.mean == pytest.approx(0.3)
    assert r.ci95 == pytest.approx(T_DF2 * 0.1 / math.sqrt(3))
    assert round(r.ci95, 4) == 0.2484
    assert r.to_json() == {"mean": r.mean, "ci95": r.ci95, "n": 3}
    # Two seeds 0.2 and 0.4: sd = √0.02, half-width t(0.975, 1)·√0.02/√2 = 12.706·0.1.
    assert mean_ci([0.2, 0.4]).ci95 == pytest.approx(T_DF1 * 0.1)


def test_mean_ci_skips_null_and_nan_and_has_no_interval_for_one_value():
    one = mean_ci([0.7, float("nan"), None])
    assert (one.mean, one.ci95, one.n) == (0.7, None, 1)
    assert mean_ci([None]).to_json() == {"mean": None, "ci95": None, "n": 0}
    assert mean_ci([]).n == 0


def test_finite():
    assert [finite(x) for x in (2, 0.5, None, float("inf"), float("nan"), True, "1")] == [
        2.0,
        0.5,
        None,
        None,
        None,
        None,
        None,
    ]


# ---- order of groups and ablation values -------------------------------------------------------------------


def test_group_order_puts_erm_first_and_oracle_last():
    assert group_order(["oracle", "iga:tau=3", "iga", "erm", "andmask", "iga"]) == [
        "erm",
        "andmask",
        "iga",
        "iga:tau=3",
        "oracle",
    ]
    assert group_order(["iga"]) == ["iga"]


def test_by_group_orders_groups_and_seeds(tmp_path):
    for job_id, group, seed in (("a", "oracle", 0), ("b", "iga", 2), ("c", "erm", 1), ("d", "iga", 0)):
        write_job(tmp_path, job_id, group, seed)
    grouped = by_group(load_sweep(tmp_path))
    assert {g: [r.job_id for r in runs] for g, runs in grouped.items()} == {
        "erm": ["c"],
        "iga": ["d", "b"],
        "oracle": ["a"],
    }
    assert list(grouped) == ["erm", "iga", "oracle"]


def test_ablation_values_sort_numbers_then_none_then_names():
    values = [10, "none", 3, "cos", None, 0.5, "None", "adam"]
    assert sorted(values, key=ablation_sort_key) == [0.5, 3, 10, None, "None", "none", "adam", "cos"]


def test_shared_hparam_needs_every_run_to_record_the_same_value(tmp_path):
    write_job(tmp_path, "a", "iga", 0, hparams={"tau": 10})
    write_job(tmp_path, "b", "iga", 1, hparams={"tau": 10.0})
    write_job(tmp_path, "c", "iga", 2, hparams={"tau": 3})
    write_job(tmp_path, "d", "iga", 3)
    a, b, c, d = load_sweep(tmp_path)
    assert shared_hparam([a, b], "tau") == 10
    assert shared_hparam([a, c], "tau") is UNKNOWN
    assert shared_hparam([a, d], "tau") is UNKNOWN  # d does not record tau at all
    assert shared_hparam([], "tau") is UNKNOWN


# ---- reading the sweep folder ------------------------------------------------------------------------------


def test_every_job_is_read_and_only_done_ones_are_finished(tmp_path):
    write_job(tmp_path, "e0", "erm", 0, ood=0.2)
    write_job(tmp_path, "e1", "erm", 1, ood=0.99, done=False)  # result.json may exist mid-run
    (tmp_path / "jobs" / "e2").mkdir()  # being created: no job.json yet
    records, finished = load_finished(tmp_path)
    assert [(r.job_id, r.finished) for r in records] == [("e0", True), ("e1", False)]
    assert [r.job_id for r in finished] == ["e0"]
    assert records[1].result is None  # an unfinished job's result.json is never read
    assert finished[0].metric("eval", "summary", "ood_accuracy") == 0.2
    assert finished[0].metric("eval", "summary", "gap") is None  # absent
    assert finished[0].metric("eval", "summary", "val_accuracy") is None  # null


def test_no_job_or_no_finished_job_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no jobs \(expected .*jobs/\*/job\.json"):
        load_finished(tmp_path / "empty")
    write_job(tmp_path / "running", "e0", "erm", 0, done=False)
    write_job(tmp_path / "running", "e1", "erm", 1, done=False)
    with pytest.raises(ValueError, match="none of its 2 jobs has finished yet"):
        load_finished(tmp_path / "running")
    with pytest.raises(FileNotFoundError, match="missing-dir: no such sweep folder"):
        load_sweep(tmp_path / "missing-dir")


def test_log_rows_are_read_on_first_use(tmp_path):
    job = write_job(tmp_path, "e0", "erm", 0, log=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    write_job(tmp_path, "e1", "erm", 1)  # no log.jsonl
    first, second = load_sweep(tmp_path)
    (job / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n')
    assert [row["loss"] for row in first.log] == [2.0, 1.0]  # read now, not when the folder was loaded
    assert second.log == []


def test_a_malformed_log_names_the_file_and_line(tmp_path):
    job = write_job(tmp_path, "e0", "erm", 0, log=[{"step": 1, "loss": 2.0}])
    with (job / "log.jsonl").open("a") as f:
        f.write('{"step": 2, "loss": \n')
    [record] = load_sweep(tmp_path)  # collect never reads logs: loading still succeeds
    with pytest.raises(ValueError, match=r"e0/log\.jsonl:2: invalid JSON"):
        _ = record.log


def test_malformed_job_json_names_the_file(tmp_path):
    job = write_job(tmp_path, "e0", "erm", 0)
    (job / "job.json").write_text('{"group": "erm", "seed": ')
    with pytest.raises(ValueError, match=r"jobs/e0/job\.json: invalid JSON"):
        load_sweep(tmp_path)


def test_bad_fields_name_the_file_and_field(tmp_path):
    job = write_job(tmp_path / "a", "e0", "erm", 0)
    (job / "job.json").write_text(json.dumps({"group": "erm", "seed": "zero"}))
    with pytest.raises(ValueError, match=r"e0/job\.json: seed: expected an integer, got 'zero'"):
        load_sweep(tmp_path / "a")
    (job / "job.json").write_text(json.dumps({"job_id": "e0", "seed": 0}))
    with pytest.raises(ValueError, match=r"e0/job\.json: group: must be a non-empty string, got None"):
        load_sweep(tmp_path / "a")
    (job / "job.json").write_text(json.dumps({"group": "iga:tau=3", "seed": 0, "ablation": "tau"}))
    with pytest.raises(ValueError, match=r"e0/job\.json: ablation: expected null or"):
        load_sweep(tmp_path / "a")
    job = write_job(tmp_path / "b", "e0", "erm", 0)
    (job / "result.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"e0/result\.json: expected a JSON object"):
        load_sweep(tmp_path / "b")
    job = write_job(tmp_path / "c", "e0", "erm", 0)
    (job / "result.json").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"e0/result\.json: missing although .*e0/done marks the job done"
    ):
        load_sweep(tmp_path / "c")
    job = write_job(tmp_path / "d", "e0", "erm", 0)
    (job / "result.json").write_text(json.dumps({"eval": {"summary": {}}}))
    with pytest.raises(ValueError, match=r"e0/result\.json: eval\.summary: missing"):
        load_sweep(tmp_path / "d")
    job = write_job(tmp_path / "e", "e0", "erm", 0)
    (job / "result.json").write_text(json.dumps({"eval": {"summary": {"ood_accuracy": "high"}}}))
    [record] = load_sweep(tmp_path / "e")
    with pytest.raises(ValueError, match=r"e0/result\.json: eval\.summary\.ood_accuracy: expected a number"):
        record.metric("eval", "summary", "ood_accuracy")


def test_plain_run_folders_are_read_as_one_job_each(tmp_path):
    # The layout of runs/demo: <dir>/<algorithm>/result.json, no jobs/ folder; its summary.json is no run.
    for algorithm, seed in (("erm", 3), ("iga", 0)):
        (tmp_path / algorithm).mkdir()
        result = {
            "config": {"algorithm": algorithm, "seed": seed, "algorithm_options": {"tau": 10}},
            "eval": {"summary": {"ood_accuracy": 0.5}},
        }
        (tmp_path / algorithm / "result.json").write_text(json.dumps(result))
    (tmp_path / "summary.json").write_text("{}")
    records = load_sweep(tmp_path)
    assert [(r.group, r.seed, r.hparams_seed, r.hparams, r.finished) for r in records] == [
        ("erm", 3, 0, {"tau": 10}, True),
        ("iga", 0, 0, {"tau": 10}, True),
    ]


def test_a_run_folder_without_evaluation_counts_as_unfinished(tmp_path):
    run = tmp_path / "runs" / "erm"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"config": {"algorithm": "erm", "seed": 3}, "train": {}}))
    [record] = load_sweep(tmp_path / "runs")
    assert (record.group, record.seed, record.finished) == ("erm", 3, False)
    (run / "result.json").write_text(json.dumps({"config": {"seed": 3}}))
    with pytest.raises(ValueError, match=r"erm/result\.json: config\.algorithm: missing"):
        load_sweep(tmp_path / "runs")


# ---- model selection ---------------------------------------------------------------------------------------


def test_model_selection_follows_validation_not_test_accuracy(tmp_path):
    write_job(tmp_path, "a", "iga", 0, hparams_seed=0, val=0.50, ood=0.90)
    write_job(tmp_path, "b", "iga", 0, hparams_seed=1, val=0.70, ood=0.10)
    write_job(tmp_path, "c", "iga", 1, hparams_seed=0, val=0.80, ood=0.30)
    write_job(tmp_path, "d", "iga", 1, hparams_seed=1, val=0.60, ood=0.95)
    write_job(tmp_path, "e", "iga", 1, hparams_seed=2, val=0.99, done=False)  # unfinished: never chosen
    kept, notes = select_models(load_sweep(tmp_path))
    assert [(r.seed, r.job_id) for r in kept] == [(0, "b"), (1, "c")]
    assert notes == []


def test_model_selection_ties_and_missing_validation(tmp_path):
    write_job(tmp_path, "t2", "erm", 0, hparams_seed=2, val=0.7)
    write_job(tmp_path, "t1", "erm", 0, hparams_seed=1, val=0.7)
    write_job(tmp_path, "m1", "iga", 0, hparams_seed=1, ood=0.9)
    write_job(tmp_path, "m0", "iga", 0, hparams_seed=0, ood=0.4)
    write_job(tmp_path, "n1", "iga", 1, hparams_seed=1, val=float("nan"))  # NaN: as if missing
    write_job(tmp_path, "n2", "iga", 1, hparams_seed=2)
    write_job(tmp_path, "s0", "oracle", 0, hparams_seed=0)  # one draw: nothing to select, no note
    kept, notes = select_models(load_sweep(tmp_path))
    assert [(r.group, r.seed, r.hparams_seed) for r in kept] == [
        ("erm", 0, 1),
        ("iga", 0, 0),
        ("iga", 1, 1),
        ("oracle", 0, 0),
    ]
    assert notes == [
        "iga, seed 0: no val_accuracy in any of its 2 hparams draws; kept hparams_seed 0 without selection",
        "iga, seed 1: no val_accuracy in any of its 2 hparams draws; kept hparams_seed 1 without selection",
    ]


def test_doctests():
    outcome = doctest.testmod(sweep_results_module)
    assert outcome.attempted >= 8 and outcome.failed == 0
