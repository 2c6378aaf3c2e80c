"""Every registered algorithm trains through the real trainer (hooks for IRM/Fishr logits and Fish meta steps)."""

from __future__ import annotations

import json

import pytest
import torch

from iga.algorithms import list_algorithms
from iga.config import TrainConfig
from iga.training.loop import train


def _two_step_config(dataset, micro_base, out, algorithm, options=None):
    """Two steps of 4 sets in 2 accumulated micro-batches on the micro test student."""
    return TrainConfig(
        data_dir=str(dataset),
        out_dir=str(out),
        base_dir=str(micro_base),
        student="micro",
        steps=2,
        sets_per_batch=4,
        grad_accum=2,
        lr=1e-2,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=2,
        max_length=96,
        algorithm=algorithm,
        algorithm_options=options or {},
        lora={"r": 4, "alpha": 8, "init": "gaussian"},
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("algorithm", list_algorithms())
def test_algorithm_trains_two_steps_with_accumulation(dataset, micro_base, tmp_path, algorithm):
    cfg = _two_step_config(dataset, micro_base, tmp_path / algorithm, algorithm)
    out = train(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / algorithm / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows), rows
    assert out["summary"]["algorithm_hparams"] is not None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_iga_with_logic_token_statistics_trains_through_the_trainer(dataset, micro_base, tmp_path):
    """``stat_tokens="logic"``: the trainer appends the relabelled rows (2K captured domains) and logs the K
    training losses."""
    cfg = _two_step_config(dataset, micro_base, tmp_path / "logic", "iga", {"stat_tokens": "logic"})
    train(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "logic" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert sorted(k for k in rows[0] if k.startswith("loss/")) == [
        f"loss/{d}" for d in sorted(cfg.train_domains)
    ]
    assert all(0 < r["mask_mean"] < 1 for r in rows)
