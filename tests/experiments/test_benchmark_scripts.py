"""benchmarks/baselines_step_time.py runs end to end on a shrunken preset and reports ratios and peak memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_baselines_benchmark_reports_ratios_and_memory(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    path = ROOT / "benchmarks" / "baselines_step_time.py"
    spec = importlib.util.spec_from_file_location("baselines_step_time", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shrunk = {**bench.PRESETS["ci"], "hidden": 32, "intermediate": 64, "seq": 16, "warmup": 1, "repeats": 2}
    monkeypatch.setitem(bench.PRESETS, "ci", shrunk)
    try:
        out = tmp_path / "b.json"
        result = bench.main(["--preset", "ci", "--methods", "iga,vrex", "--memory", "--out", str(out)])
    finally:
        sys.modules.pop("_common", None)
    assert set(result["ratios_to_erm"]) == {"erm", "iga", "vrex"} and result["ratios_to_erm"]["erm"] == 1.0
    assert all(v > 0 for v in result["peak_step_bytes"].values())
    printed = capsys.readouterr().out
    assert "ratio iga_step/erm_step = " in printed and "memory iga = " in printed and out.exists()


def test_step_time_benchmark_reports_both_mask_spaces_the_floor_and_memory(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    path = ROOT / "benchmarks" / "step_time.py"
    spec = importlib.util.spec_from_file_location("step_time", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shrunk = {**bench.PRESETS["ci"], "hidden": 32, "intermediate": 64, "seq": 16}
    monkeypatch.setitem(bench.PRESETS, "ci", shrunk)
    try:
        out, md = tmp_path / "s.json", tmp_path / "s.md"
        result = bench.main(
            ["--preset", "ci", "--warmup", "1", "--repeats", "2", "--unbatched", "--mask-variants", "--out",
             str(out), "--markdown", str(md)]
        )  # fmt: skip
    finally:
        sys.modules.pop("_common", None)
    assert {"iga_step", "iga_factor_step", "iga_step_unbatched", "erm_step"} <= set(result["median_seconds"])
    assert set(result["step_peak_bytes"]) == {"erm_step", "iga_step", "iga_factor_step"}
    gemms = result["gemm_count"]
    assert gemms["adapted_layers"] == 14 and gemms["gemms_per_step"] == {
        "erm_step": 28,
        "iga_step": 42,
        "iga_factor_step": 28,
    }
    lines = capsys.readouterr().out.strip().splitlines()
    variants = [f"iga_{name}_step" for name in bench.MASK_VARIANTS]
    assert (
        lines[-10].startswith("ratio iga_step/erm_step = ") and "floor hooks_full/erm_step = " in lines[-10]
    )
    assert lines[-9].startswith("ratio iga_step_unbatched/erm_step = ")
    assert lines[-8].startswith("ratio iga_factor_step/erm_step = ")
    assert [line.split(" = ")[0] for line in lines[-7:-1]] == [f"ratio {v}/erm_step" for v in variants]
    assert "(IGAConfig(**{'stat_tokens': 'logic'}))" in lines[-2]
    assert all(result["ratios"][f"{v}/erm_step"] > 0 for v in variants)
    assert lines[-1].startswith("peak step memory: erm ")
    assert "| `iga_factor_step` |" in md.read_text() and out.exists()
