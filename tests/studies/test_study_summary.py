"""docs/results/summary.json: the main comparison of a sweep, the same numbers as ``iga collect``."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import study_summary as study_summary_module
from iga.sweeps.collect import collect
from study_summary import main, study_summary


def _job(root: Path, job_id: str, group: str, seed: int, ood: float, *, ablation: dict | None = None) -> None:
    folder = root / "jobs" / job_id
    folder.mkdir(parents=True)
    entry = {
        "job_id": job_id,
        "group": group,
        "algorithm": group.split(":")[0],
        "seed": seed,
        "ablation": ablation,
    }
    (folder / "job.json").write_text(json.dumps(entry))
    summary = {"id_accuracy": 0.6, "ood_accuracy": ood, "gap": 0.6 - ood, "val_accuracy": 0.5,
               "val_nocue_accuracy": 0.4, "by_family": {}}  # fmt: skip
    result = {"train": {"step_time_s": 1.0, "train_seconds": 60.0}, "eval": {"summary": summary,
              "lcs": {"canonical": 0.3}, "generation_seconds": 30.0}}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "done").write_text("")


def _sweep(root: Path) -> None:
    for seed, ood in enumerate((0.2, 0.3, 0.4)):
        _job(root, f"e{seed}", "erm", seed, ood)
        _job(root, f"i{seed}", "iga", seed, ood + 0.1)
    _job(root, "o0", "oracle", 0, 0.6)
    _job(root, "t0", "iga:tau=1", 0, 0.9, ablation={"name": "tau", "value": 1})


def test_main_comparison_only_with_collects_numbers(tmp_path: Path) -> None:
    _sweep(tmp_path)
    summary = study_summary(tmp_path)
    assert list(summary["algorithms"]) == ["erm", "iga", "oracle"]  # the ablation group is left out
    full = collect(tmp_path, out_dir=tmp_path / "collect", formats=()).summary
    for group, entry in summary["algorithms"].items():
        for name in ("ood_accuracy", "id_accuracy", "lcs", "val_nocue_accuracy", "cue_gain"):
            assert entry[name] == full[group][name], (group, name)
        assert entry["n_seeds"] == full[group]["n_seeds"] and entry["seeds"] == full[group]["seeds"]
    iga = summary["algorithms"]["iga"]
    assert iga["n_seeds"] == 3 and abs(iga["ood_accuracy"]["mean"] - 0.4) < 1e-12
    assert abs(iga["cue_gain"]["mean"] - 0.1) < 1e-12 and iga["cue_gain"]["ci95"] == 0.0
    assert abs(iga["oracle_gap_closed"] - 0.1 / 0.3) < 1e-12
    assert summary["jobs"] == {"finished": 8, "unfinished": 0}
    assert summary["job_hours_recorded"] == round(8 * 90 / 3600, 3)


def test_cli_writes_the_file_and_names_its_command(tmp_path: Path, capsys) -> None:
    _sweep(tmp_path / "sweep")
    out = tmp_path / "docs" / "summary.json"
    main([str(tmp_path / "sweep"), "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["regenerate"] == f"python studies/study_summary.py {tmp_path / 'sweep'} --out {out}"
    assert "3 groups, 8 finished jobs" in capsys.readouterr().out


def test_docstring_examples() -> None:
    assert doctest.testmod(study_summary_module).failed == 0


def test_summary_names_the_regime_and_the_selection_rule(tmp_path: Path) -> None:
    _sweep(tmp_path)
    assert study_summary(tmp_path)["regime"] == {}  # no sweep.json: nothing to name
    spec = {"data": {"preset": "micro", "shortcut": {"share": 0.5, "noise": 0.2}}, "student": "tiny",
            "micro_base": {}, "train": {"steps": 600}}  # fmt: skip
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "m", "spec": spec, "jobs": []}))
    summary = study_summary(tmp_path, select="test")
    assert summary["regime"] == {"preset": "micro", "shortcut": {"share": 0.5, "noise": 0.2}, "student": "tiny",
                                 "base": "micro skill base", "steps": 600}  # fmt: skip
    assert summary["selection_rule"] == "test" and "ORACLE" in summary["model_selection"]
