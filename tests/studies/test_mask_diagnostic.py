"""studies/mask_diagnostic.py: V̂ of per-domain gradients summed over batches, at a fixed model."""

from __future__ import annotations

import json

import pytest
import torch

from iga.config import TrainConfig
from iga.training.loop import train
from iga.utils.io import InputError
from mask_diagnostic import main, relative_vhat, vhat_vs_batches


def _config(dataset, micro_base, out) -> dict:
    cfg = TrainConfig(
        data_dir=str(dataset), out_dir=str(out), base_dir=str(micro_base), student="micro", steps=2,
        sets_per_batch=2, lr=1e-2, warmup_steps=1, log_every=1, checkpoint_every=2, max_length=96,
        lora={"r": 4, "alpha": 8, "init": "gaussian"},
    )  # fmt: skip
    return cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else dict(cfg)


def test_relative_vhat_identities():
    g = torch.randn(5, 7, dtype=torch.float64)
    assert relative_vhat(torch.stack([g, g, g])) == pytest.approx(0.0, abs=1e-12)  # agreement: no conflict
    assert relative_vhat(torch.stack([g, -g])) == pytest.approx(1.0, abs=1e-12)  # opposite: all conflict
    noise = torch.randn(4, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert relative_vhat(noise) == pytest.approx(0.75, abs=0.005)  # (K − 1)/K for pure noise


def test_rows_and_the_one_batch_identity(dataset, micro_base, tmp_path):
    res = vhat_vs_batches(_config(dataset, micro_base, tmp_path / "run"), batches=5)
    assert [r["batches"] for r in res["rows"]] == [1, 2, 4, 5]
    assert [r["sets_per_domain"] for r in res["rows"]] == [2, 4, 8, 10]
    first = res["rows"][0]
    # one batch summed is that batch: both columns average the same per-layer numbers
    assert first["vhat_of_sum"] == pytest.approx(first["vhat_per_batch"], rel=1e-12)
    for r in res["rows"]:
        assert 0.0 <= r["vhat_of_sum_min_layer"] <= r["vhat_of_sum"] <= r["vhat_of_sum_max_layer"] <= 1.0
    assert res["num_domains"] == 4 and res["noise_floor_per_batch"] == pytest.approx(3 / 4)
    assert res["trained_from"] is None and res["layers"] > 0


def test_cli_measures_initial_and_trained_weights_and_writes_files(dataset, micro_base, tmp_path):
    config = _config(dataset, micro_base, tmp_path / "run")
    train(TrainConfig(**config), progress=False)  # writes run/checkpoint.pt at step 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "run" / "config.json").write_text(
        json.dumps(config)
    )  # as a sweep job folder has: names the algorithm
    out = tmp_path / "diag"
    payload = main([str(tmp_path / "config.json"), "--trainable-from", str(tmp_path / "run"), "--batches", "2",
                    "--out", str(out)])  # fmt: skip
    results = payload["results"]
    assert list(results) == ["initial LoRA", "trained erm (run)"]
    assert results["trained erm (run)"]["trained_from"]["step"] == 2
    # trained LoRA weights change the gradients, so the statistic differs from the initial model's
    assert (
        results["trained erm (run)"]["rows"][0]["vhat_of_sum"]
        != results["initial LoRA"]["rows"][0]["vhat_of_sum"]
    )
    assert "## trained erm (run)" in (out / "mask_diagnostic.md").read_text()
    assert json.loads((out / "mask_diagnostic.json").read_text())["command"].startswith(
        "python studies/mask_diagnostic.py"
    )
    assert (out / "mask_diagnostic.png").stat().st_size > 0


def test_unreadable_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"config\.json: cannot read a run config"):
        main([str(tmp_path / "config.json")])
