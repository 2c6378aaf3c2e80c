"""Step time and memory of the IGA core against ERM and against the K-backward references (DESIGN §8).

One run, side by side, on a Llama-style model built from a config (no download) with LoRA on every linear
layer, K = 4 domains, a domain-major batch:

* ``erm_step``            forward + backward + AdamW step (no capture);
* ``iga_step``            the same under ``capture.domains`` with ``IGAOptimizer`` (default ``IGAConfig``: full
  (coordinate) space, batched per-layer work on stacks of same-shape layers);
* ``iga_factor_step``     the same with ``IGAConfig(mask_space="factor")``: the mask on the per-domain LoRA-factor
  gradients, no full-weight GEMM;
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
(2) the measured peak of live tensor bytes during one ERM step and one step of each IGA variant, from
``torch.profiler``'s memory timeline (``profile_memory=True``; every CPU allocation and free inside the step,
relative to the start of the step). ``tracemalloc`` does not see torch's CPU allocations and ``ru_maxrss`` is
dominated by imports.

The floor of full-space IGA is printed next to its ratio, measured and counted: ``hooks_full/erm_step`` (the
per-domain weight gradients alone, no IGA work and no optimizer step) and the GEMMs per step on the adapted layers
(ERM-LoRA 2 per layer, full-space IGA 3; see ``_common.gemm_count``).

Usage: ``python benchmarks/step_time.py --preset ci --out runs/bench/step_time.json``; torch's intra-op threads
follow ``OMP_NUM_THREADS``. The last lines are the ratios that DESIGN §8 and issue #20 set targets for:
``ratio kseparate/hooks``, ``ratio kbackward/hooks``, ``ratio iga_step/erm_step`` (≤ 1.3; with the full-space floor
and the GEMM count), ``ratio iga_factor_step/erm_step`` (≤ 1.1), and the peak step memory. ``--unbatched`` also
times full-space IGA one layer at a time (``layer_group_size=1``, the path before issue #20) in the same
interleaved run and prints ``ratio iga_step_unbatched/erm_step`` before the factor-space line; ``--mask-variants``
times IGA's mask variants (issue #17) the same way and prints ``ratio iga_<variant>_step/erm_step`` after it.
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from _common import (
    K,
    counted_bytes,
    environment,
    gemm_count,
    losses_factory,
    preset_model_and_batch,
    ratios,
    step_peak_bytes,
    time_round_robin,
    variants,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: IGA's mask variants (issue #17), timed with ``--mask-variants``: each changes one option of the default
#: (coordinate space, sign statistic); ``variance`` is the paper's statistic.
MASK_VARIANTS: dict[str, dict[str, Any]] = {
    "variance": {"mask_stat": "variance"},
    "row": {"mask_space": "row"},
    "column": {"mask_space": "column"},
    "layer": {"mask_space": "layer"},
    "subspace": {"mask_space": "subspace"},
    "logic": {"stat_tokens": "logic"},
}

PRESETS: dict[str, dict[str, int]] = {
    "ci": {"hidden": 128, "intermediate": 344, "layers": 2, "vocab": 512, "rows_per_domain": 4, "seq": 64,
           "rank": 8, "warmup": 1, "repeats": 5},
    "default": {"hidden": 256, "intermediate": 688, "layers": 4, "vocab": 512, "rows_per_domain": 4, "seq": 128,
                "rank": 8, "warmup": 2, "repeats": 7},
    # The micro regime's student and the study of record's batch: the tiny Llama (4 layers, word vocabulary of
    # 1 804), LoRA r = 16, 8 isomer sets × 4 domains of ~100 tokens.
    "micro": {"hidden": 128, "intermediate": 344, "layers": 4, "vocab": 1804, "rows_per_domain": 8, "seq": 100,
              "rank": 16, "warmup": 2, "repeats": 7},
}  # fmt: skip


def _setup(preset: dict[str, int]):
    model, batch = preset_model_and_batch(preset, K)
    return model, batch, losses_factory(batch)


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
    peaks, counted, gemms = result["step_peak_bytes"], result["counted_bytes"], result["gemm_count"]
    lines += [
        "",
        f"Peak live tensor bytes during one step (profiler memory timeline): ERM {peaks['erm_step'] / 2**20:.2f} MiB, "
        f"IGA {peaks['iga_step'] / 2**20:.2f} MiB, IGA factor space {peaks['iga_factor_step'] / 2**20:.2f} MiB. "
        f"Counted from the layer shapes: largest layer's (K, m, n) block "
        f"{counted['largest_layer_domain_grads'] / 2**20:.2f} MiB, bound on the stacks of same-shape layers "
        f"{counted['stack_bound'] / 2**20:.2f} MiB, stored factor gradients "
        f"{counted['stored_factor_grads'] / 2**20:.2f} MiB, accumulation buffers of all layers (only with gradient "
        f"accumulation) {counted['accumulation_buffers_all_layers'] / 2**20:.2f} MiB.",
        "",
        f"GEMMs per step on the {gemms['adapted_layers']} adapted layers ({gemms['tokens']} tokens; "
        f"{gemms['gflop_per_gemm_per_layer_set']:.2f} GFLOP per GEMM over all layers): ERM "
        f"{gemms['gemms_per_step']['erm_step']}, IGA full space {gemms['gemms_per_step']['iga_step']}, IGA factor "
        f"space {gemms['gemms_per_step']['iga_factor_step']} (+ LoRA-sized ones). Measured full-space floor "
        f"(per-domain weight gradients alone, no IGA work, no optimizer step): hooks_full/erm_step = "
        f"{result['ratios']['hooks_full/erm_step (full-space floor)']:.3f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ci")
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument(
        "--markdown", help="write the results as a markdown table (for docs/performance.md) here"
    )
    parser.add_argument(
        "--unbatched",
        action="store_true",
        help="also time iga_step_unbatched: full space one layer at a time (layer_group_size=1, the path before "
        "issue #20), in the same interleaved run",
    )
    parser.add_argument(
        "--mask-variants",
        action="store_true",
        help="also time IGA's mask variants (issue #17: the variance statistic, row, column, layer, subspace, "
        "logic-token statistics) "
        "in the same interleaved run; their ratios to erm_step come after the factor-space line",
    )
    parser.add_argument("--repeats", type=int, help="timed rounds (default: the preset's)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds (default: the preset's)")
    args = parser.parse_args(argv)

    preset = dict(PRESETS[args.preset])
    for key in ("repeats", "warmup"):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    model, batch, losses_of = _setup(preset)
    n_params = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    load_before = os.getloadavg()
    extra = {"iga_step_unbatched": {"layer_group_size": 1}} if args.unbatched else {}
    if args.mask_variants:
        extra |= {f"iga_{name}_step": options for name, options in MASK_VARIANTS.items()}
    timed = variants(model, batch, losses_of, extra_iga=extra)
    times, cpu_times = time_round_robin(timed, preset["warmup"], preset["repeats"])
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
        "ratios": ratios(medians),
        "ratios_of_cpu_medians": ratios(cpu_medians),
        "iga_options": {"iga_step": "IGAConfig()", "iga_factor_step": "IGAConfig(mask_space='factor')"}
        | {name: f"IGAConfig(**{options!r})" for name, options in extra.items()},
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "counted_bytes": counted_bytes(model),
        "gemm_count": gemm_count(model, tokens=int(batch["attention_mask"].numel())),
        "environment": environment(),
    }
    peaks = {name: step_peak_bytes(timed[name]) for name in ("erm_step", "iga_step", "iga_factor_step")}
    result["step_peak_bytes"] = peaks
    print(
        f"peak live tensor bytes during a step: erm {peaks['erm_step'] / 2**20:.2f} MiB, "
        f"iga {peaks['iga_step'] / 2**20:.2f} MiB, iga_factor {peaks['iga_factor_step'] / 2**20:.2f} MiB; "
        f"counted extra buffers: {result['counted_bytes']}"
    )
    gemms = result["gemm_count"]
    print(
        f"gemms per step on the {gemms['adapted_layers']} adapted layers: {gemms['gemms_per_step']} "
        f"({gemms['gflop_per_gemm_per_layer_set']:.2f} GFLOP each over all layers)"
    )
    if args.out:
        from iga.utils.io import atomic_write_json

        atomic_write_json(args.out, result)
    if args.markdown:
        from iga.utils.io import atomic_write_text

        atomic_write_text(args.markdown, _markdown(result))
    final = result["ratios"]
    print(f"ratio kseparate/hooks = {final['kseparate/hooks (full)']:.3f}")
    print(f"ratio kbackward/hooks = {final['kbackward/hooks (full)']:.3f}")
    print(
        f"ratio iga_step/erm_step = {final['iga_step/erm_step']:.3f}  (full space; floor hooks_full/erm_step = "
        f"{final['hooks_full/erm_step (full-space floor)']:.3f}, GEMMs per step {gemms['gemms_per_step']['iga_step']} "
        f"vs ERM {gemms['gemms_per_step']['erm_step']})"
    )
    if "iga_step_unbatched/erm_step" in final:
        print(
            f"ratio iga_step_unbatched/erm_step = {final['iga_step_unbatched/erm_step']:.3f}  (one layer at a time)"
        )
    print(f"ratio iga_factor_step/erm_step = {final['iga_factor_step/erm_step']:.3f}")
    for name in extra:
        if name != "iga_step_unbatched":
            print(f"ratio {name}/erm_step = {final[f'{name}/erm_step']:.3f}  ({result['iga_options'][name]})")
    print(
        f"peak step memory: erm {peaks['erm_step'] / 2**20:.2f} MiB, iga {peaks['iga_step'] / 2**20:.2f} MiB, "
        f"iga_factor {peaks['iga_factor_step'] / 2**20:.2f} MiB"
    )
    return result


if __name__ == "__main__":
    main()
