"""The demo end to end on a micro student (the only cover of `iga demo`; kept short)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iga.cli import app


@pytest.mark.slow
def test_quick_demo_writes_report_summary_and_plot(tmp_path, monkeypatch):
    monkeypatch.setenv("IGA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])  # micro: the default regime
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"erm", "iga", "oracle"}
    assert summary["config"]["regime"] == "micro" and summary["config"]["shortcut"] == {
        "share": 0.5,
        "noise": 0.2,
    }
    for method in summary["methods"].values():
        assert set(method) >= {"id_accuracy", "ood_accuracy", "lcs", "step_time_s"}
        assert 0 <= method["id_accuracy"] <= 1 and 0 <= method["lcs"] <= 1
        # the cue-stripped validation copy is evaluated too: same number of answers as val
        assert method["val_nocue_accuracy"] is not None and 0 <= method["val_accuracy"] <= 1
        assert method["val_wrongcue_accuracy"] is not None and method["wrongcue_follow"] is not None
    report = (out / "report.md").read_text()
    assert "Shortcut reliance" in report
    assert "| erm |" in report and "| iga |" in report and "| oracle |" in report and "demo.png" in report
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "ERM-SFT vs IGA" in result.output
    from iga.experiments.demo import render_saved_report

    assert render_saved_report(out) == report  # the report is a function of the saved files alone


def test_standard_quick_demo_still_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("IGA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--regime", "standard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"erm", "iga"} and summary["config"]["regime"] == "standard"


def test_micro_demo_takes_the_micro_base_with_its_configured_steps(tmp_path, monkeypatch):
    import iga.models.micro_base_cache as micro_base_cache
    from iga.experiments.demo import micro_demo_config, quick_demo_config, run_demo
    from iga.models.micro_base import MicroBaseConfig

    seen = []

    def fake_ensure(cfg, **kwargs):
        seen.append((cfg.steps, cfg.polish_steps))
        raise RuntimeError("stop after the base request")

    monkeypatch.setattr(micro_base_cache, "ensure_micro_base", fake_ensure)
    for cfg in (
        quick_demo_config(str(tmp_path / "a"), pretrain_steps=7),
        micro_demo_config(out_dir=str(tmp_path / "b")),
    ):
        with pytest.raises(RuntimeError, match="stop after the base request"):
            run_demo(cfg, say=lambda msg: None, progress=False)
    # a base of another length has no polish phase; the demo's is the default, polish included
    assert seen == [(7, 0), (MicroBaseConfig().steps, MicroBaseConfig().polish_steps)]


def test_bad_regime_is_refused():
    from iga.experiments.demo import demo_config

    with pytest.raises(ValueError, match="regime: 'big' is not one of micro, standard"):
        demo_config(regime="big")


def test_demo_pretrains_its_base_for_the_configured_steps(tmp_path, monkeypatch):
    import iga.models.pretrain as pretrain
    from iga.experiments.demo import quick_standard_demo_config as quick_demo_config
    from iga.experiments.demo import run_demo

    seen = []

    def fake_ensure_base(cfg, **kwargs):
        seen.append(cfg.steps)
        raise RuntimeError("stop after the base request")

    monkeypatch.setattr(pretrain, "ensure_base", fake_ensure_base)
    for cfg in (
        quick_demo_config(str(tmp_path / "a"), pretrain_steps=7),
        quick_demo_config(str(tmp_path / "b")),
    ):
        with pytest.raises(RuntimeError, match="stop after the base request"):
            run_demo(cfg, say=lambda msg: None, progress=False)
    assert seen == [7, pretrain.PRETRAIN_PRESETS["micro"]["steps"]]
    from iga.experiments.demo import demo_config

    assert demo_config().pretrain_steps == 150  # the demo's own budget, not the study's `small` preset (400)


def test_the_oracle_sees_as_many_rows_per_step_as_erm(tmp_path):
    from iga.experiments.demo import _train_config, micro_demo_config

    cfg = micro_demo_config(out_dir=str(tmp_path))
    eight = ["math", "medicine", "law", "science", "finance", "sports", "cooking", "fictional"]
    erm = _train_config(cfg, "erm", tmp_path, tmp_path)
    oracle = _train_config(cfg, "oracle", tmp_path, tmp_path, eight)
    assert erm.sets_per_batch * 4 == oracle.sets_per_batch * 8 == cfg.sets_per_batch * 4
