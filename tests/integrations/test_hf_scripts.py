"""The runnable pieces of the integration: both examples (--tiny), the GPU benchmark's CPU dry run, the memory
check on a tiny shape, and the real-checkpoint presets."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(relative: str):
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_logs(result: dict) -> list[dict]:
    return [h for h in result["log_history"] if "loss" in h]


def test_trl_example_tiny_trains_with_chat_prompts(tmp_path):
    pytest.importorskip("trl")
    result = _load("examples/trl_sft_iga.py").main(["--tiny", "--out", str(tmp_path)])
    logs = _train_logs(result)
    assert result["global_step"] == 6 and [h["step"] for h in logs] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(h["loss"]) and 0 < h["iga/mask_mean"] <= 1 for h in logs)
    assert {"loss/math", "loss/medicine", "loss/law", "loss/science"} <= set(logs[0])
    assert result["first_prompt"].startswith("<|user|>")  # the chat-template path of an instruct model
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


def test_hf_trainer_example_tiny_trains(tmp_path):
    result = _load("examples/hf_trainer_iga.py").main(["--tiny", "--out", str(tmp_path), "--grad-accum", "2"])
    logs = _train_logs(result)
    assert result["global_step"] == 6 and all(math.isfinite(h["loss"]) for h in logs)
    assert logs[-1]["iga/tau"] == 10.0 and (tmp_path / "adapter" / "adapter_model.safetensors").exists()


@pytest.fixture()
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    yield
    sys.modules.pop("_common", None)


def test_gpu_benchmark_dry_run_on_cpu(benchmarks_on_path, tmp_path):
    bench = _load("benchmarks/gpu_step_time.py")
    result = bench.main(["--device", "cpu", "--tiny", "--out", str(tmp_path / "r.json"),
                         "--markdown", str(tmp_path / "r.md")])  # fmt: skip
    assert set(result["median_seconds"]) == {"erm_step", "iga_step", "iga_factor_step", "hooks_full",
                                             "kseparate_full", "kbackward_full", "hooks_factor",
                                             "kseparate_factor", "kbackward_factor"}  # fmt: skip
    assert all(v > 0 for v in result["ratios"].values()) and set(result["peak_bytes"]) == {
        "erm_step",
        "iga_step",
        "iga_factor_step",
    }
    assert result["tokens_per_second"]["iga_factor_step"]["all"] > 0
    assert result["gemm_count"]["gemms_per_step"]["iga_step"] == 3 * result["gemm_count"]["adapted_layers"]
    assert "| `iga_step` |" in (tmp_path / "r.md").read_text() and (tmp_path / "r.json").exists()


def test_memory_check_on_a_tiny_shape(benchmarks_on_path):
    bench = _load("benchmarks/memory_0p5b.py")
    result = bench.main(["--shape", "tiny", "--steps", "1"])
    terms, measured = result["formula_bytes"], result["measured_bytes"]
    m, n = result["config"]["largest_layer"]["m"], result["config"]["largest_layer"]["n"]
    assert terms["largest_layer_block"] == 4 * 4 * m * n and terms["largest_layer_temporaries"] == 21 * m * n
    assert measured["consumer_largest_layer"] >= terms["largest_layer_block"]


def test_formula_terms_of_the_memory_check(benchmarks_on_path):
    formula = _load("benchmarks/memory_0p5b.py").formula
    terms = formula([(4864, 896), (896, 896)], rank=8)
    assert terms["largest_layer_block"] == 4 * 4 * 4864 * 896
    assert terms["pending_factor_grads"] == 4 * 8 * (4864 + 896 + 896 + 896)
    assert terms["accumulation_sums"] == 4 * 4 * (4864 * 896 + 896 * 896)
    assert terms["per_step_extra"] == (16 + 21) * 4864 * 896 + terms["pending_factor_grads"]


@pytest.mark.parametrize(
    "preset", sorted((ROOT / "configs" / "presets").glob("*.yaml")), ids=lambda p: p.stem
)
def test_presets_are_valid_bf16_all_linear_lora_train_configs(preset):
    from iga.config import TrainConfig, build_config, load_yaml

    cfg = build_config(TrainConfig, load_yaml(preset), source=str(preset))
    assert cfg.mixed_precision == "bf16" and cfg.lora.target_modules == "all-linear" and cfg.lora.dropout == 0
    assert cfg.algorithm == "iga" and cfg.grad_accum == 1 and cfg.base_dir.startswith("models/")
    assert cfg.prompt_format == ("chat" if "instruct" in preset.stem else "plain")
    assert f"iga train -c configs/presets/{preset.name}" in preset.read_text()
