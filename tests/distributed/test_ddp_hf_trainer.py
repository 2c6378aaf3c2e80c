"""``IGATrainer`` (``transformers.Trainer``'s own DDP) on 2 gloo processes, float64, plain SGD (so an update is
``lr ×`` the applied gradient), 2 optimizer steps of 2 accumulated micro-batches of one isomer set each.

Checked against single-process ``IGATrainer`` runs in this process: ``global`` == one process accumulating the
union of both ranks' micro-batches (4 per step); ``local`` == the mean of each rank's update computed alone (that
process reads rank r's batches through Accelerate's own ``BatchSamplerShard``); the ranks stay bitwise identical.
"""

from __future__ import annotations

import ddp_scenarios as sc
import pytest
import torch

pytestmark = pytest.mark.slow

TOL = {"rtol": 1e-10, "atol": 1e-13}
WORLD = sc.WORLD


def _load(runs, scope: str, rank: int) -> dict:
    return torch.load(runs / f"hf_{scope}.rank{rank}.pt", weights_only=False)


def _assert_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and len(want) == 14  # 7 linear layers × (A, B)
    for name in want:
        torch.testing.assert_close(got[name], want[name], **TOL, msg=name)


def _max_rel_diff(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max() / b[n].abs().max()) for n in b)


@pytest.fixture(scope="module")
def one_process_union(tmp_path_factory):
    """One process, 4 accumulated micro-batches per step: the sampler's batches 0-3, then 4-7 — the union of
    what the two ranks read in each step (rank r reads batches r, r+2, ...)."""
    trainer, recorder = sc.hf_trainer(
        tmp_path_factory.mktemp("hf_union"), stats_scope="global", grad_accum=sc.HF_GA * WORLD
    )
    trainer.train()
    return recorder, [h for h in trainer.state.log_history if "loss" in h]


@pytest.fixture(scope="module")
def one_process_per_rank(tmp_path_factory):
    """For each rank, its first optimizer step alone: rank r's micro-batches (Accelerate's BatchSamplerShard over
    the same sampler), its own per-domain sums, mask and projection."""
    from accelerate.data_loader import BatchSamplerShard

    recorders = []
    for rank in range(WORLD):
        trainer, recorder = sc.hf_trainer(
            tmp_path_factory.mktemp(f"hf_rank{rank}"), stats_scope="local", max_steps=1
        )
        trainer.isomer_sampler = BatchSamplerShard(
            trainer.isomer_sampler, num_processes=WORLD, process_index=rank
        )
        trainer.train()
        recorders.append(recorder)
    return recorders


@pytest.mark.parametrize("scope", ["local", "global"])
def test_each_rank_draws_whole_isomer_sets_dealt_round_robin(hf_runs, scope):
    from iga.integrations import IsomerSetBatchSampler

    rows = sc.hf_dataset()
    sampler = IsomerSetBatchSampler.from_dataset(rows, rows_per_batch=sc.K, seed=0, batches_multiple_of=4)
    assert len(sampler) == 8  # 8 sets, one per batch: 2 steps × 2 micro-batches × 2 ranks
    seen = []
    for rank in range(WORLD):
        run = _load(hf_runs, scope, rank)
        assert (
            run["distributed_type"].endswith("MULTI_CPU") and run["model_class"] == "DistributedDataParallel"
        )
        want = [
            [rows[i]["instance_id"] for i in sampler.batch(b)] for b in (rank, rank + 2, rank + 4, rank + 6)
        ]
        assert run["batches"] == want
        assert all(batch == [batch[0]] * sc.K for batch in run["batches"])  # one whole set, its K members
        seen += [batch[0] for batch in run["batches"]]
    assert sorted(seen) == [f"set-{s}" for s in range(8)]  # the two ranks split the epoch, no set twice


@pytest.mark.parametrize("scope", ["local", "global"])
def test_ranks_apply_identical_updates_and_the_weights_move(hf_runs, scope):
    r0, r1 = _load(hf_runs, scope, 0), _load(hf_runs, scope, 1)
    assert len(r0["steps"]) == len(r1["steps"]) == sc.HF_STEPS
    for step in range(sc.HF_STEPS):
        for what in ("grads", "params"):
            a, b = r0["steps"][step][what], r1["steps"][step][what]
            assert a.keys() == b.keys() and len(a) == 14
            for name in a:
                assert torch.equal(a[name], b[name]), (
                    f"{scope} step {step + 1}: ranks differ on {what} {name}"
                )
    final = r0["steps"][-1]["params"]
    assert _max_rel_diff(final, r0["init"]) > 1e-3  # the LoRA weights moved
    # SGD: every step applied exactly lr × the recorded (rank-averaged) gradient.
    before = r0["init"]
    for step in r0["steps"]:
        for name, grad in step["grads"].items():
            torch.testing.assert_close(step["params"][name], before[name] - sc.HF_LR * grad, **TOL)
        before = step["params"]


def test_global_scope_equals_one_process_on_the_union_of_the_ranks_micro_batches(hf_runs, one_process_union):
    got = _load(hf_runs, "global", 0)
    recorder, logs = one_process_union
    for step in range(sc.HF_STEPS):  # step 2 too: both runs apply the same step 1, then see the same batches
        _assert_close(got["steps"][step]["grads"], recorder.steps[step]["grads"])
        _assert_close(got["steps"][step]["params"], recorder.steps[step]["params"])
    # The logs are rank averages: the Trainer's loss and our per-domain losses equal the one-process ones.
    assert [h["step"] for h in got["log"]] == [h["step"] for h in logs] == [1, 2]
    for mine, ref in zip(got["log"], logs, strict=True):
        for key in ("loss", "loss/0", "loss/1", "loss/2", "iga/vhat_mean", "iga/grad_norm"):
            assert mine[key] == pytest.approx(ref[key], rel=1e-6), key


def test_local_scope_first_step_equals_the_mean_of_the_per_rank_updates(
    hf_runs, one_process_per_rank, one_process_union
):
    got = _load(hf_runs, "local", 0)
    per_rank = [recorder.steps[0]["grads"] for recorder in one_process_per_rank]
    mean = {name: (per_rank[0][name] + per_rank[1][name]) / 2 for name in per_rank[0]}
    _assert_close(got["steps"][0]["grads"], mean)
    _assert_close(got["steps"][0]["params"], {n: got["init"][n] - sc.HF_LR * g for n, g in mean.items()})
    # The two scopes really differ here: each rank's mask is not the mask of both ranks' sums.
    assert _max_rel_diff(got["steps"][0]["grads"], one_process_union[0].steps[0]["grads"]) > 1e-2
