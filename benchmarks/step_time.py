"""Step time and memory of the IGA core against ERM and against the K-backward references (DESIGN §8).

One run, side by side, on a Llama-style model built from a config (no download) with LoRA on every linear
layer, K = 4 domains, a domain-major batch:

* ``erm_step``            forward + backward + AdamW step (no capture);
* ``iga_step``            the same under ``capture.domains`` with ``IGAOptimizer`` (default ``IGAConfig``);
* ``hooks_{full,factor}`` per-domain gradients via hooks (forward + backward; full space hands each layer's
  (K, m, n) tensor to a consumer that drops it, factor space keeps the LoRA-sized sums);
* ``kseparate_{...}``     K separate forward+backward passes on each domain's rows;
* ``kbackward_{...}``     one forward, K ``autograd.grad(L_k, retain_graph=True)`` calls.

Times are the median of ``repeats`` runs after ``warmup`` runs. The variants are interleaved round-robin so
that background load on a shared machine hits them alike; the JSON also keeps every sample and the medians of
process CPU time, which other processes disturb less than wall time.

Memory, two numbers:
(1) the bytes of the extra tensors on the IGA path, counted from the captured layers' shapes (the largest
(K, m, n) block, the consumer's temporaries, the stored factor gradients, and the accumulation buffers that
gradient accumulation would keep);
(2) the measured peak of live tensor bytes during one ERM step and one IGA step, from ``torch.profiler``'s
memory timeline (``profile_memory=True``; every CPU allocation and free inside the step, relative to the start
of the step). ``tracemalloc`` does not see torch's CPU allocations and ``ru_maxrss`` is dominated by imports.

Usage: ``python benchmarks/step_time.py --preset ci --out runs/bench/step_time.json``. The last three lines
are the ratios that DESIGN §8 sets targets for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PRESETS: dict[str, dict[str, int]] = {
    "ci": {"hidden": 128, "intermediate": 344, "layers": 2, "vocab": 512, "rows_per_domain": 4, "seq": 64,
           "rank": 8, "warmup": 1, "repeats": 5},
    "default": {"hidden": 256, "intermediate": 688, "layers": 4, "vocab": 512, "rows_per_domain": 4, "seq": 128,
                "rank": 8, "warmup": 2, "repeats": 7},
}  # fmt: skip
K = 4


def _setup(preset: dict[str, int]):
    import torch

    from iga.gradients import per_domain_token_loss
    from iga.gradients.testing import domain_major_batch, tiny_lora_llama

    model = tiny_lora_llama(
        hidden_size=preset["hidden"],
        intermediate_size=preset["intermediate"],
        num_layers=preset["layers"],
        vocab_size=preset["vocab"],
        rank=preset["rank"],
        lora_alpha=2 * preset["rank"],
        dtype=torch.float32,
        seed=0,
    )
    model.train()
    batch = domain_major_batch(
        num_domains=K,
        rows_per_domain=preset["rows_per_domain"],
        seq_len=preset["seq"],
        vocab_size=preset["vocab"],
        prompt_len=preset["seq"] // 4,
        seed=0,
    )

    def losses_of(net) -> Callable[..., Any]:
        def losses(rows: Any = slice(None), num_domains: int = K):
            out = net(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows])
            if num_domains == K:
                ids = batch["domain_ids"][rows]
            else:
                ids = torch.zeros(out.logits.shape[0], dtype=torch.long)
            return per_domain_token_loss(out.logits, batch["labels"][rows], ids, num_domains)

        return losses

    return model, batch, losses_of


def _variants(model, batch, losses_of) -> dict[str, Callable[[], None]]:
    """Each hooked variant gets its own copy of the model with its capture built once, so no variant runs with
    another's hooks attached and no timing includes building a capture."""
    import copy

    import torch

    from iga import create_iga_optimizer
    from iga.gradients import DomainGradCapture
    from iga.gradients.reference import per_domain_grads_kbackward, per_domain_grads_shared_forward

    ids = batch["domain_ids"]
    rows = [torch.nonzero(ids == k).flatten() for k in range(K)]
    losses = losses_of(model)  # the un-hooked model: ERM and the references
    erm_opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def erm_step() -> None:
        erm_opt.zero_grad(set_to_none=True)
        losses().mean().backward()
        erm_opt.step()

    iga_model = copy.deepcopy(model)
    iga_losses = losses_of(iga_model)
    iga_opt = create_iga_optimizer(iga_model, lr=1e-4)

    def iga_step() -> None:
        iga_opt.zero_grad(set_to_none=True)
        with iga_opt.capture.domains(ids, num_domains=K):
            iga_losses().mean().backward()
        iga_opt.step()

    def hooks(space: str) -> Callable[[], None]:
        net = copy.deepcopy(model)
        net_losses = losses_of(net)
        cap = DomainGradCapture(net, space=space)
        if space == "full":
            cap.set_consumer(lambda layer, grads: None)

        def run() -> None:
            net.zero_grad(set_to_none=True)
            cap.reset()
            with cap.domains(ids, num_domains=K):
                net_losses().mean().backward()

        return run

    def kseparate(space: str) -> Callable[[], None]:
        return lambda: per_domain_grads_kbackward(model, lambda k: losses(rows[k], 1)[0], K, space=space)

    def kbackward(space: str) -> Callable[[], None]:
        return lambda: per_domain_grads_shared_forward(model, losses, space=space)

    return {
        "erm_step": erm_step,
        "iga_step": iga_step,
        "hooks_full": hooks("full"),
        "kseparate_full": kseparate("full"),
        "kbackward_full": kbackward("full"),
        "hooks_factor": hooks("factor"),
        "kseparate_factor": kseparate("factor"),
        "kbackward_factor": kbackward("factor"),
    }


def _time_round_robin(
    variants: dict[str, Callable[[], None]], warmup: int, repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per run. The variants are interleaved (one run of each per round) so that
    background load, if any, hits all alike; CPU time counts only this process's threads."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def _counted_bytes(model) -> dict[str, int]:
    """Bytes of the extra tensors of the IGA path, from the shapes the consumer actually receives."""
    from iga.gradients import DomainGradCapture

    with DomainGradCapture(model) as cap:
        largest = max(K * m * n * 4 for m, n in (layer.shape for layer in cap.layers))
        all_layers = sum(K * m * n * 4 for m, n in (layer.shape for layer in cap.layers))
        factors = sum(p.numel() * p.element_size() for layer in cap.layers for p in layer.parameters())
    return {
        "largest_layer_domain_grads": largest,
        "consumer_temporaries_largest_layer": 4
        * largest
        // K,  # Ḡ, V, Ḡ², centring buffer (the rest in place)
        "stored_factor_grads": factors,
        "accumulation_buffers_all_layers": all_layers,
    }


def _step_peak_bytes(fn: Callable[[], None]) -> int:
    """Peak of live tensor bytes during one run of ``fn``, above the level at its start (profiler timeline)."""
    import tempfile
    import warnings

    from torch.profiler import ProfilerActivity, profile

    fn()  # warm: optimizer state and lazily built objects exist before the measured run
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # "allocated before the profiling started": blocks that predate the step
        with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
        ) as prof:
            fn()
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path, encoding="utf-8") as f:
            _, sizes = json.load(f)
    totals = [sum(row) for row in sizes]
    return max(totals) - totals[0]


def _ratios(t: dict[str, float]) -> dict[str, float]:
    return {
        "iga_step/erm_step": t["iga_step"] / t["erm_step"],
        "kseparate/hooks (full)": t["kseparate_full"] / t["hooks_full"],
        "kbackward/hooks (full)": t["kbackward_full"] / t["hooks_full"],
        "kseparate/hooks (factor)": t["kseparate_factor"] / t["hooks_factor"],
        "kbackward/hooks (factor)": t["kbackward_factor"] / t["hooks_factor"],
    }


def _markdown(result: dict[str, Any]) -> str:
    cfg, env = result["config"], result["environment"]
    wall, cpu = result["median_seconds"], result["median_cpu_seconds"]
    lines = [
        f"Preset `{result['preset']}`: Llama h{cfg['hidden']}/i{cfg['intermediate']}/L{cfg['layers']}/V{cfg['vocab']}, "
        f"{cfg['params']:,} params, LoRA r={cfg['rank']} on all linear layers ({cfg['trainable_params']:,} trainable), "
        f"K={cfg['num_domains']} × {cfg['rows_per_domain']} rows × {cfg['seq']} tokens, fp32; median of "
        f"{cfg['repeats']} interleaved runs after {cfg['warmup']} warm-up. Load average (1 min) before/after: "
        f"{result['load_average_1_5_15']['before'][0]:.2f} / {result['load_average_1_5_15']['after'][0]:.2f}. "
        f"torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, Python {env['python']}, "
        f"{env['cpu_count']} CPUs, {env['torch_threads']} torch threads.",
        "",
        "| variant | wall median (ms) | CPU median (ms) | wall / ERM |",
        "|---|---|---|---|",
    ]
    for name in wall:
        lines.append(
            f"| `{name}` | {1000 * wall[name]:.1f} | {1000 * cpu[name]:.1f} | {wall[name] / wall['erm_step']:.2f} |"
        )
    lines += ["", "| ratio | wall medians | CPU medians |", "|---|---|---|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {value:.3f} | {result['ratios_of_cpu_medians'][key]:.3f} |")
    peaks, counted = result["step_peak_bytes"], result["counted_bytes"]
    lines += [
        "",
        f"Peak live tensor bytes during one step (profiler memory timeline): ERM {peaks['erm_step'] / 2**20:.2f} MiB, "
        f"IGA {peaks['iga_step'] / 2**20:.2f} MiB. Counted from the layer shapes: largest layer's (K, m, n) block "
        f"{counted['largest_layer_domain_grads'] / 2**20:.2f} MiB, stored factor gradients "
        f"{counted['stored_factor_grads'] / 2**20:.2f} MiB, accumulation buffers of all layers (only with gradient "
        f"accumulation) {counted['accumulation_buffers_all_layers'] / 2**20:.2f} MiB.",
        "",
    ]
    return "\n".join(lines)


def _environment() -> dict[str, Any]:
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ci")
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument(
        "--markdown", help="write the results as a markdown table (for docs/performance.md) here"
    )
    args = parser.parse_args(argv)

    preset = PRESETS[args.preset]
    model, batch, losses_of = _setup(preset)
    n_params = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    load_before = os.getloadavg()
    variants = _variants(model, batch, losses_of)
    times, cpu_times = _time_round_robin(variants, preset["warmup"], preset["repeats"])
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpu_times.items()}
    for name, t in times.items():
        print(
            f"{name:18s} median {1000 * medians[name]:8.1f} ms  (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})"
            f"  cpu median {1000 * cpu_medians[name]:8.1f} ms"
        )
    result: dict[str, Any] = {
        "preset": args.preset,
        "config": {**preset, "num_domains": K, "params": n_params, "trainable_params": n_lora},
        "median_seconds": medians,
        "median_cpu_seconds": cpu_medians,
        "all_seconds": times,
        "ratios": _ratios(medians),
        "ratios_of_cpu_medians": _ratios(cpu_medians),
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "counted_bytes": _counted_bytes(model),
        "environment": _environment(),
    }
    peaks = {name: _step_peak_bytes(variants[name]) for name in ("erm_step", "iga_step")}
    result["step_peak_bytes"] = peaks
    print(
        f"peak live tensor bytes during a step: erm {peaks['erm_step'] / 2**20:.2f} MiB, "
        f"iga {peaks['iga_step'] / 2**20:.2f} MiB; counted extra buffers: {result['counted_bytes']}"
    )
    if args.out:
        from iga.utils.io import atomic_write_json

        atomic_write_json(args.out, result)
    if args.markdown:
        from iga.utils.io import atomic_write_text

        atomic_write_text(args.markdown, _markdown(result))
    ratios = result["ratios"]
    print(f"ratio iga_step/erm_step = {ratios['iga_step/erm_step']:.3f}")
    print(f"ratio kseparate/hooks = {ratios['kseparate/hooks (full)']:.3f}")
    print(f"ratio kbackward/hooks = {ratios['kbackward/hooks (full)']:.3f}")
    return result


if __name__ == "__main__":
    main()
