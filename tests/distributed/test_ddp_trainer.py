"""The real trainer (``iga.training.loop.train``) on 2 gloo processes with ``cpu=True`` on a micro base: every
rank ends with the same LoRA weights, and rank 0 alone writes the log, checkpoint, adapter and summary."""

from __future__ import annotations

import json

import pytest
import torch
from ddp_worker import TRAINER_RUNS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("run", sorted(TRAINER_RUNS))
def test_two_process_training_keeps_ranks_identical_and_writes_once(trainer_runs, run):
    r0, r1 = (torch.load(trainer_runs / f"{run}.rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["summary"]["num_processes"] == 2
    moved = [n for n in r0["params"] if not torch.equal(r0["params"][n], r0["init"][n])]
    assert moved, "no LoRA weight moved in 2 steps"
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), f"{run}: ranks diverged on {name}"

    folder = trainer_runs / run
    rows = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # one writer: a second rank would repeat every step
    assert json.loads((folder / "train_summary.json").read_text())["num_processes"] == 2
    assert (folder / "adapter" / "adapter_config.json").exists()
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2
    saved = {n: t for n, t in ckpt["trainable"].items() if "lora_" in n}
    assert saved.keys() == r0["params"].keys()
    for name, value in saved.items():
        assert torch.equal(value, r0["params"][name])
