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
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"erm", "iga"}
    for method in summary["methods"].values():
        assert set(method) >= {"id_accuracy", "ood_accuracy", "lcs", "step_time_s"}
        assert 0 <= method["id_accuracy"] <= 1 and 0 <= method["lcs"] <= 1
    report = (out / "report.md").read_text()
    assert "| erm |" in report and "| iga |" in report and "demo.png" in report
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "ERM-SFT vs IGA" in result.output
