"""One training run's step, and the part of it that builds the batch: what a job of a sweep pays per step.

Builds the run of a job's ``config.json`` (``prepare_run``: data, student, algorithm, optimizer), then times
``--steps`` whole steps (batch, forward/backward, clip, optimizer) after ``--warmup``, and ``run.micro_batches``
alone on the next ``--steps`` steps. Found the batch order re-sorted at every step (docs/performance.md, "The
training step's batch order"); to measure a commit before a change, run this file with ``PYTHONPATH`` set to that
commit's ``src``.

Usage: ``python benchmarks/train_step.py --config runs/micro_study/jobs/JOB/config.json`` (idle machine; threads
follow ``OMP_NUM_THREADS``). Prints ``step_s`` and ``batch_s`` (means over the timed steps) and writes ``--out``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import environment


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a job's config.json (a TrainConfig)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="runs/bench/train_step.json")
    args = parser.parse_args(argv)

    import torch

    from iga.config import TrainConfig
    from iga.training.run import prepare_run

    torch.set_flush_denormal(True)
    fields = json.loads(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(**{**fields, "out_dir": tmp})
        run = prepare_run(cfg)
        run.model.train()

        def step(s: int) -> None:
            batches = run.micro_batches(s)
            for i, b in enumerate(batches):
                run.forward_backward(b, s, sync=i == len(batches) - 1)
            if cfg.max_grad_norm is not None and not run.algorithm.clips_gradients:
                run.accelerator.clip_grad_norm_(run.trainable, cfg.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)

        for s in range(args.warmup):
            step(s)
        t0 = time.perf_counter()
        for s in range(args.warmup, args.warmup + args.steps):
            step(s)
        step_s = (time.perf_counter() - t0) / args.steps
        t0 = time.perf_counter()
        for s in range(args.warmup + args.steps, args.warmup + 2 * args.steps):
            run.micro_batches(s)
        batch_s = (time.perf_counter() - t0) / args.steps
    result = {"config": args.config, "algorithm": cfg.algorithm, "step_s": step_s, "batch_s": batch_s,
              "steps": args.steps, "warmup": args.warmup, "environment": environment()}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"step_s = {step_s:.4f}\nbatch_s = {batch_s:.4f}")
    return result


if __name__ == "__main__":
    main()
