"""benchmarks/train_step.py times a job's step and its batch building on a tiny run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_step_benchmark_times_the_step_and_the_batch(
    monkeypatch, tmp_path, dataset, micro_base, capsys
):
    config = {
        "data_dir": str(dataset), "out_dir": str(tmp_path / "unused"), "base_dir": str(micro_base),
        "student": "micro", "steps": 10, "sets_per_batch": 2, "max_length": 96, "lora": {"r": 4, "alpha": 8},
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("train_step", ROOT / "benchmarks" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    try:
        out = tmp_path / "t.json"
        result = bench.main(
            ["--config", str(tmp_path / "config.json"), "--warmup", "1", "--steps", "2", "--out", str(out)]
        )
    finally:
        sys.modules.pop("_common", None)
    assert 0 < result["batch_s"] < result["step_s"] and json.loads(out.read_text())["algorithm"] == "erm"
    assert not (tmp_path / "unused").exists()  # the run lives in a temporary folder
    assert capsys.readouterr().out.splitlines()[-2].startswith("step_s = ")
