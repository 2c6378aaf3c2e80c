"""ONE prepared single-GPU benchmark: IGA against ERM and against both per-domain-gradient references, on a
random-init model of Qwen2.5-0.5B's shape (DESIGN §8 at a real size).

Model: ``--shape qwen2.5-0.5b`` (494 M parameters; or ``llama-0.5b``) built from a config, no download, weights in
bf16, LoRA r=8 (fp32 factors, PEFT's default) on every linear layer but the LM head. Batch: K=4 domains ×
``--rows-per-domain`` rows × ``--seq`` tokens, domain-major, 1/4 of each row prompt (label -100).

The variants are those of ``benchmarks/step_time.py`` (``erm_step``, ``iga_step`` (full space, the default
``IGAConfig``), ``iga_factor_step`` (``mask_space="factor"``), ``hooks_{full,factor}``, ``kseparate_*``,
``kbackward_*``), timed round-robin with ``torch.cuda.synchronize()`` around every run. Reported:

* median wall time per variant and the ratios IGA/ERM (both mask spaces), the full-space floor
  ``hooks_full/erm_step``, K-separate/hooks, K-backward/hooks;
* peak memory of one run of each variant: ``torch.cuda.max_memory_allocated()`` above the allocated bytes before
  it (the model and optimizer state are excluded, the activations and every extra buffer included); the CPU dry
  run measures the ERM and IGA steps only, with the profiler's memory timeline;
* tokens/s of the ERM and IGA steps (all tokens, and supervised tokens);
* the GEMMs per step on the adapted layers (ERM-LoRA 2 per layer, full-space IGA 3).

Usage (one GPU, ~3-6 min on an H100-class card)::

    python benchmarks/gpu_step_time.py --out runs/bench/gpu_step_time.json --markdown runs/bench/gpu_step_time.md
    python benchmarks/gpu_step_time.py --device cpu --tiny     # dry run on CPU in seconds (CI runs this)

Lower ``--rows-per-domain`` / ``--seq`` on a small card: the 151 936-token LM head's logits dominate activation
memory (16 × 512 × 151 936 bf16 = 2.5 GB, plus an fp32 copy in the loss).
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from _common import (
    SHAPES,
    K,
    build_lora_model,
    environment,
    gemm_count,
    losses_factory,
    ratios,
    step_peak_bytes,
    time_round_robin,
    variants,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = {"shape": "tiny", "rows_per_domain": 2, "seq": 32, "warmup": 1, "repeats": 2}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="dry run: a tiny shape, 2 rows × 32 tokens, 2 repeats"
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument(
        "--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on cuda, fp32 on cpu"
    )
    parser.add_argument("--rows-per-domain", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write a markdown table (for docs/performance.md) here")
    args = parser.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    return args


def _peak_bytes(fn: Any, device: str) -> int:
    """Peak allocated bytes during one run of ``fn`` above the level before it."""
    import torch

    if device == "cpu":
        return step_peak_bytes(fn)
    fn()  # warm: lazily built state exists before the measured run
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def _device_info(device: str) -> dict[str, Any]:
    import torch

    info = environment()
    info["device"] = device
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})  # fmt: skip
    return info


def _markdown(result: dict[str, Any]) -> str:
    cfg, env = result["config"], result["environment"]
    wall, peaks, tps = result["median_seconds"], result["peak_bytes"], result["tokens_per_second"]
    where = f"{env.get('gpu', env['device'])}" + (f" ({env['gpu_memory_gib']} GiB)" if "gpu" in env else "")
    lines = [
        f"Shape `{cfg['shape']}` ({cfg['params']:,} params, {cfg['dtype']}), LoRA r={cfg['rank']} on all linear layers "
        f"({cfg['trainable_params']:,} trainable, fp32), K={K} × {cfg['rows_per_domain']} rows × {cfg['seq']} tokens; "
        f"median of {cfg['repeats']} interleaved runs after {cfg['warmup']} warm-up. {where}, torch {env['torch']}, "
        f"CUDA {env.get('cuda')}, transformers {env['transformers']}, peft {env['peft']}.",
        "",
        "| variant | wall median (ms) | wall / ERM | peak memory above start (MiB) |",
        "|---|---|---|---|",
    ]
    for name in wall:
        peak = f"{peaks[name] / 2**20:.0f}" if name in peaks else "–"
        lines.append(f"| `{name}` | {1000 * wall[name]:.1f} | {wall[name] / wall['erm_step']:.2f} | {peak} |")
    lines += ["", "| ratio | wall medians |", "|---|---|"]
    lines += [f"| {key} | {value:.3f} |" for key, value in result["ratios"].items()]
    gemms = result["gemm_count"]
    lines += [
        "",
        f"Tokens/s (all / supervised): ERM {tps['erm_step']['all']:,.0f} / {tps['erm_step']['supervised']:,.0f}, "
        f"IGA {tps['iga_step']['all']:,.0f} / {tps['iga_step']['supervised']:,.0f}, IGA factor space "
        f"{tps['iga_factor_step']['all']:,.0f} / {tps['iga_factor_step']['supervised']:,.0f}. GEMMs per step on the "
        f"{gemms['adapted_layers']} adapted layers: {gemms['gemms_per_step']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from iga.gradients.testing import domain_major_batch

    args = _parse(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu --tiny for a dry run")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[
        args.dtype or ("fp32" if args.device == "cpu" else "bf16")
    ]
    shape = SHAPES[args.shape]
    model = build_lora_model(shape, rank=args.rank, dtype=dtype, device=args.device)
    batch = domain_major_batch(num_domains=K, rows_per_domain=args.rows_per_domain, seq_len=args.seq,
                               vocab_size=shape["vocab"], prompt_len=args.seq // 4, seed=0)  # fmt: skip
    batch = {k: v.to(args.device) for k, v in batch.items()}
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    timed = variants(model, batch, losses_factory(batch))
    times, _ = time_round_robin(timed, args.warmup, args.repeats, sync=sync)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"{name:18s} median {1000 * medians[name]:9.1f} ms  (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})"
        )
    # The CPU dry run profiles only the two steps: the profiler's memory timeline takes seconds per run.
    measured = timed if args.device.startswith("cuda") else ("erm_step", "iga_step", "iga_factor_step")
    peaks = {name: _peak_bytes(timed[name], args.device) for name in measured}
    tokens, supervised = batch["attention_mask"].numel(), int((batch["labels"] != -100).sum())
    tokens_per_second = {name: {"all": tokens / medians[name], "supervised": supervised / medians[name]}
                         for name in ("erm_step", "iga_step", "iga_factor_step")}  # fmt: skip
    result: dict[str, Any] = {
        "config": {"shape": args.shape, **shape, "dtype": str(dtype).removeprefix("torch."), "rank": args.rank,
                   "rows_per_domain": args.rows_per_domain, "seq": args.seq, "warmup": args.warmup,
                   "repeats": args.repeats, "num_domains": K,
                   "params": sum(p.numel() for p in model.parameters()),
                   "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "median_seconds": medians,
        "all_seconds": times,
        "ratios": ratios(medians),
        "peak_bytes": peaks,
        "tokens_per_second": tokens_per_second,
        "gemm_count": gemm_count(model, tokens=tokens),
        "environment": _device_info(args.device),
    }  # fmt: skip
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
        f"{final['hooks_full/erm_step (full-space floor)']:.3f})"
    )
    print(f"ratio iga_factor_step/erm_step = {final['iga_factor_step/erm_step']:.3f}")
    print(
        f"peak memory above start: erm {peaks['erm_step'] / 2**20:.0f} MiB, iga {peaks['iga_step'] / 2**20:.0f} MiB, "
        f"iga_factor {peaks['iga_factor_step'] / 2**20:.0f} MiB"
    )
    print(
        f"tokens/s: erm {tokens_per_second['erm_step']['all']:,.0f}, iga {tokens_per_second['iga_step']['all']:,.0f}, "
        f"iga_factor {tokens_per_second['iga_factor_step']['all']:,.0f}"
    )
    return result


if __name__ == "__main__":
    main()
