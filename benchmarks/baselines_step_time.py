"""Step time of every registered method (ERM, IGA, the baselines) relative to ERM on the same batch.

Each method gets its own copy of the same Llama-style LoRA model (built from a config, no download), its own
optimizer and, for gradient-side methods, its own ``DomainGradCapture``; one step follows the trainer's contract
(forward + backward inside the capture's domain context, ``loss`` / ``loss_from_logits``, ``optimizer.step()``;
Fish's ``meta_step``). K = 4 domains, a domain-major batch. The methods run round-robin (one step of each per
round) so that background load hits them alike; reported: the median wall time and the median process CPU time of
``repeats`` rounds after ``warmup`` rounds.

Usage: ``python benchmarks/baselines_step_time.py --preset ci [--threads 1] [--out runs/bench/baselines.json]``.
The last lines are ``ratio <method>_step/erm_step = X`` (wall-time medians). With ``--memory``, each method's
peak of live tensor bytes during one step (``torch.profiler`` memory timeline, above the level at the step's start)
is measured after the timing and printed as ``memory <method> = N MiB (+D MiB vs ERM)``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PRESETS: dict[str, dict[str, int]] = {
    "ci": {"hidden": 128, "intermediate": 344, "layers": 2, "vocab": 512, "rows_per_domain": 4, "seq": 64,
           "rank": 8, "warmup": 2, "repeats": 7},
    "default": {"hidden": 256, "intermediate": 688, "layers": 4, "vocab": 512, "rows_per_domain": 4, "seq": 128,
                "rank": 8, "warmup": 2, "repeats": 7},
}  # fmt: skip
K = 4
# Timed in addition to the registered methods: Fishr once its penalty is on (second order), since its default
# 1500 warm-up steps run the cheaper first-order path.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"fishr_penalty_on": ("fishr", {"anneal_steps": 0})}


def _step_fn(label: str, model, batch) -> Callable[[], None]:
    """One training step of ``label`` on ``model`` (its own copy) following the trainer's contract."""
    import torch

    from iga.algorithms import get_algorithm
    from iga.gradients import DomainGradCapture, per_domain_token_loss

    name, options = VARIANTS.get(label, (label, {}))
    algorithm = get_algorithm(name)(num_domains=K, **options)
    capture = DomainGradCapture(model, space=algorithm.capture_space) if algorithm.capture_space else None
    params = [p for p in model.parameters() if p.requires_grad]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # iga_koyama's switch to eager attention
        optimizer = algorithm.build_optimizer(model, params, capture, lr=1e-4)
    ids = batch["domain_ids"]
    counter = {"step": 0}

    def domain_backward(k: int) -> torch.Tensor:
        rows = ids == k
        logits = model(
            input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows]
        ).logits
        zeros = torch.zeros(int(rows.sum()), dtype=torch.long)
        loss = per_domain_token_loss(logits, batch["labels"][rows], zeros, 1)[0]
        loss.backward()
        return loss.detach()

    def step() -> None:
        s = counter["step"]
        counter["step"] += 1
        if algorithm.trainer_call == "meta_step":
            algorithm.meta_step(domain_backward, s, optimizer=optimizer)
            return
        ctx = capture.domains(ids, num_domains=K) if capture is not None else nullcontext()
        with ctx:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            losses = per_domain_token_loss(logits, batch["labels"], ids, K)
            if algorithm.trainer_call == "loss_from_logits":
                loss = algorithm.loss_from_logits(losses, logits, batch["labels"], ids, s)
            else:
                loss = algorithm.loss(losses, s)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ci")
    parser.add_argument(
        "--methods", help=f"comma-separated subset (default: every registered method and {sorted(VARIANTS)})"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument("--memory", action="store_true", help="also measure each method's peak step memory")
    args = parser.parse_args(argv)

    import torch
    from _common import preset_model_and_batch, step_peak_bytes, time_round_robin

    from iga.algorithms import list_algorithms

    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    methods = args.methods.split(",") if args.methods else [*list_algorithms(), *VARIANTS]
    if "erm" not in methods:
        methods = ["erm", *methods]
    base, batch = preset_model_and_batch(preset, K)
    steps = {name: _step_fn(name, copy.deepcopy(base), batch) for name in methods}
    wall, cpu = time_round_robin(steps, preset["warmup"], preset["repeats"])
    medians = {name: statistics.median(t) for name, t in wall.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
    ratios = {name: medians[name] / medians["erm"] for name in methods}
    for name in methods:
        print(
            f"{name:18s} median {1000 * medians[name]:8.1f} ms  cpu median {1000 * cpu_medians[name]:8.1f} ms"
            f"  (min {1000 * min(wall[name]):.1f}, max {1000 * max(wall[name]):.1f})"
        )
    result = {
        "preset": args.preset,
        "config": {**preset, "num_domains": K, "threads": torch.get_num_threads()},
        "median_seconds": medians,
        "median_cpu_seconds": cpu_medians,
        "all_seconds": wall,
        "ratios_to_erm": ratios,
        "cpu_ratios_to_erm": {name: cpu_medians[name] / cpu_medians["erm"] for name in methods},
        "load_average_1_5_15": os.getloadavg(),
    }
    if args.memory:  # after the timing: the profiler's bookkeeping must not slow the timed steps
        result["peak_step_bytes"] = peak = {name: step_peak_bytes(fn) for name, fn in steps.items()}
        for name in methods:
            print(
                f"memory {name} = {peak[name] / 2**20:.2f} MiB "
                f"({(peak[name] - peak['erm']) / 2**20:+.2f} MiB vs ERM)"
            )
    if args.out:
        from iga.utils.io import atomic_write_json

        atomic_write_json(args.out, result)
    for name in methods:
        if name != "erm":
            print(f"ratio {name}_step/erm_step = {ratios[name]:.3f}")
    return result


if __name__ == "__main__":
    main()
