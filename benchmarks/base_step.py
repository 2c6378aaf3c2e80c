"""The micro base's training step: one padded batch vs the batch in length-sorted groups (issue #16).

``train_micro_base`` backpropagates each batch in two groups of rows sorted by length, each cut to its own longest
row (``_backward_by_length``: the same gradient, tested in float64). This script measures what that saves, side by
side in one interleaved run on the default ``MicroBaseConfig`` rows (batch 64, the ``tiny`` student, a fresh
model): forward + backward + clip + AdamW step, with the whole padded batch (``one_batch``: one group) and with 2 and 4
groups (``by_length_2``, ``by_length_4``); row generation (``rows``) is timed apart.

Usage: ``python benchmarks/base_step.py --out runs/bench/base_step.json`` (idle machine; threads follow
``OMP_NUM_THREADS``). The last lines print ``ratio by_length_2/one_batch`` and the padding share of the batches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import environment, time_round_robin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="runs/bench/base_step.json")
    args = parser.parse_args()

    import torch

    from iga.isomers.domains import load_domains
    from iga.models.micro_base import MicroBaseConfig, _backward_by_length
    from iga.models.micro_rows import MicroRows
    from iga.models.students import build_student
    from iga.models.word_tokenizer import build_word_tokenizer

    torch.set_flush_denormal(True)
    cfg = MicroBaseConfig()
    domains = load_domains()
    tok = build_word_tokenizer(max_int=cfg.max_int, domains=domains)
    rows = MicroRows(cfg, tok, domains)
    start = time.perf_counter()
    batches = [rows.batch(step) for step in range(args.warmup + args.repeats)]
    rows_seconds = (time.perf_counter() - start) / len(batches)
    model = build_student(cfg.student, tok, seed=0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    counters = {"one_batch": 0, "by_length_2": 0, "by_length_4": 0}

    def step(name: str, backward) -> None:
        batch = batches[counters[name] % len(batches)]
        counters[name] += 1
        backward(batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    variants = {
        "one_batch": lambda: step("one_batch", lambda b: _backward_by_length(model, b, 1)),
        "by_length_2": lambda: step("by_length_2", lambda b: _backward_by_length(model, b, 2)),
        "by_length_4": lambda: step("by_length_4", lambda b: _backward_by_length(model, b, 4)),
    }
    wall, cpu = time_round_robin(variants, args.warmup, args.repeats)
    median = {name: statistics.median(v) for name, v in wall.items()}
    padding = statistics.mean(1 - float(b["attention_mask"].float().mean()) for b in batches)
    result = {
        "config": {"micro_base": "MicroBaseConfig()", "warmup": args.warmup, "repeats": args.repeats},
        "environment": environment(),
        "median_seconds": median,
        "median_cpu_seconds": {name: statistics.median(v) for name, v in cpu.items()},
        "samples": wall,
        "rows_seconds": rows_seconds,
        "padding_share": padding,
        "ratios": {f"{name}/one_batch": median[name] / median["one_batch"] for name in median},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True))
    for name, seconds in median.items():
        print(f"{name:12s} {seconds * 1e3:7.1f} ms/step")
    print(f"rows         {rows_seconds * 1e3:7.1f} ms/batch (generation, not in the steps above)")
    print(f"padding share of the padded batches: {padding:.3f}")
    for name in ("by_length_2", "by_length_4"):
        print(f"ratio {name}/one_batch {result['ratios'][name + '/one_batch']:.3f}")


if __name__ == "__main__":
    main()
