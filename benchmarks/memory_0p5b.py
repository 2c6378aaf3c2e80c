"""Per-step extra memory of full-space IGA on a random-init model of Qwen2.5-0.5B's shape, on CPU: measured
against the formula of docs/guide.md ("Memory").

Formula, in bytes (the per-domain statistics are fp32 whatever the model dtype; K domains; adapted layers ℓ with
``W_ℓ ∈ R^{m_ℓ×n_ℓ}`` and LoRA rank r)::

    extra ≈ (4·K + 21)·max_ℓ m_ℓ·n_ℓ       the largest layer's (K, m, n) per-domain block (4·K·m·n), Ḡ, V and one
                                            centring / Ḡ² buffer while its mask is built (12·m·n; the rest is in
                                            place), and the "mask < 0.5" count of the metrics: a bool mask plus
                                            the int64 copy that ``.sum()`` of a bool tensor makes (9·m·n)
          + 4·Σ_ℓ r·(m_ℓ + n_ℓ)            the IGA factor gradients of every layer, held until step()
    gradient accumulation: + 4·K·Σ_ℓ m_ℓ·n_ℓ   (per-domain sums of every layer, alive until the sync micro-batch)
    ema_beta > 0:          + 8·Σ_ℓ m_ℓ·n_ℓ     (persistent EMA of V and Ḡ²)

Measured with ``torch.profiler``'s memory timeline (live tensor bytes; torch has no CPU allocator counters):

1. the IGA per-layer work alone: ``capture.consumer(layer, G)`` on a (K, m, n) block of the largest layer — peak
   live bytes above the start, the block included — against ``(4·K + 21)·m·n``;
2. whole steps on one model: ``--steps`` ERM steps and IGA steps (forward, backward, AdamW) on a batch of 1
   isomer set × K domains × ``--seq`` tokens; the last step of each is profiled. The difference of the peaks is
   at most the formula: IGA's buffers live during each layer's backward, while ERM's peak can come earlier (the
   LM head's logits gradient) — so the difference is reported next to the formula, not expected to equal it;
3. with ``--accumulation``: one IGA step of two micro-batches, against the formula's accumulation term.

Usage (measured on 2 busy CPU cores: 8 min and 9 GB peak RSS; 14 min and 14 GB with ``--accumulation`` — the
profiler's memory timeline takes much of both)::

    OMP_NUM_THREADS=2 python benchmarks/memory_0p5b.py [--accumulation] [--out runs/bench/memory_0p5b.json]
    python benchmarks/memory_0p5b.py --shape tiny --steps 1      # seconds
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _common import SHAPES, K, build_lora_model, step_peak_bytes

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MIB = 2**20


def formula(layer_shapes: list[tuple[int, int]], rank: int, *, k_dom: int = K) -> dict[str, int]:
    """The terms of the formula above, in bytes."""
    largest = max(m * n for m, n in layer_shapes)
    total = sum(m * n for m, n in layer_shapes)
    terms = {
        "largest_layer_block": 4 * k_dom * largest,
        "largest_layer_temporaries": (4 * 3 + 1 + 8) * largest,
        "pending_factor_grads": 4 * sum(rank * (m + n) for m, n in layer_shapes),
        "accumulation_sums": 4 * k_dom * total,
        "ema_state": 8 * total,
    }
    terms["per_step_extra"] = (
        terms["largest_layer_block"] + terms["largest_layer_temporaries"] + terms["pending_factor_grads"]
    )
    return terms


def _consumer_peak(optimizer: Any, layer: Any) -> int:
    """Peak live bytes of the IGA per-layer work on one (K, m, n) block of ``layer``, the block included."""
    import torch

    m, n = layer.shape

    def run() -> None:
        grads = torch.randn(
            K, m, n
        )  # allocated inside, so the block counts in the peak like in a real backward
        optimizer.capture.consumer(layer, grads)
        optimizer.zero_grad()  # drop the pending factor gradients between the warm-up and the measured run

    return step_peak_bytes(run)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from iga import create_iga_optimizer
    from iga.gradients import per_domain_token_loss
    from iga.gradients.testing import domain_major_batch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps of each kind; the last one is profiled")
    parser.add_argument("--accumulation", action="store_true", help="also measure a 2-micro-batch IGA step")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    shape = SHAPES[args.shape]
    model = build_lora_model(shape, rank=args.rank, dtype=torch.float32, device="cpu")
    batch = domain_major_batch(num_domains=K, rows_per_domain=1, seq_len=args.seq, vocab_size=shape["vocab"],
                               prompt_len=args.seq // 4, seed=0)  # fmt: skip
    trainable = [p for p in model.parameters() if p.requires_grad]
    erm_opt = torch.optim.AdamW(trainable, lr=1e-5)
    # One model for both: the capture's hooks do nothing outside `capture.domains(...)`, so ERM steps run plain.
    iga_opt = create_iga_optimizer(model, lr=1e-5)
    cap = iga_opt.capture
    shapes = [layer.shape for layer in cap.layers]
    terms = formula(shapes, args.rank)

    def losses():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], K)

    def erm_step() -> None:
        erm_opt.zero_grad(set_to_none=True)
        losses().mean().backward()
        erm_opt.step()

    def iga_step(micro_batches: int = 1) -> None:
        iga_opt.zero_grad(set_to_none=True)
        for i in range(micro_batches):
            with cap.domains(batch["domain_ids"], num_domains=K, sync=i == micro_batches - 1):
                (losses().mean() / micro_batches).backward()
        iga_opt.step()

    for _ in range(args.steps - 1):  # the profiled run inside step_peak_bytes is the last one
        erm_step()
        iga_step()
    largest = max(cap.layers, key=lambda layer: layer.shape[0] * layer.shape[1])
    measured = {
        "consumer_largest_layer": _consumer_peak(iga_opt, largest),
        "erm_step": step_peak_bytes(erm_step),
        "iga_step": step_peak_bytes(iga_step),
    }
    if args.accumulation:
        measured["iga_step_2_micro_batches"] = step_peak_bytes(lambda: iga_step(2))
    m, n = largest.shape
    result = {
        "config": {"shape": args.shape, **shape, "rank": args.rank, "seq": args.seq, "num_domains": K,
                   "rows": K, "steps": args.steps, "adapted_layers": len(shapes),
                   "params": sum(p.numel() for p in model.parameters()),
                   "trainable_params": sum(p.numel() for p in trainable),
                   "largest_layer": {"name": largest.name, "m": m, "n": n}},
        "formula_bytes": terms,
        "measured_bytes": measured,
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    cfg = result["config"]
    print(f"shape {args.shape}: {cfg['params']:,} params, {len(shapes)} adapted layers, LoRA r={args.rank} "
          f"({cfg['trainable_params']:,} trainable), batch {K} rows × {args.seq} tokens, fp32, CPU")  # fmt: skip
    print(f"largest adapted layer {largest.name} ({m}×{n})")
    per_layer_formula = terms["largest_layer_block"] + terms["largest_layer_temporaries"]
    print(
        f"IGA per-layer work, largest layer: measured {measured['consumer_largest_layer'] / MIB:8.1f} MiB   "
        f"formula (4·K+21)·m·n = {per_layer_formula / MIB:8.1f} MiB"
    )
    delta = measured["iga_step"] - measured["erm_step"]
    print(
        f"step peak above start: ERM {measured['erm_step'] / MIB:8.1f} MiB, IGA {measured['iga_step'] / MIB:8.1f} MiB, "
        f"difference {delta / MIB:8.1f} MiB   formula (upper bound) {terms['per_step_extra'] / MIB:8.1f} MiB"
    )
    if args.accumulation:
        extra = measured["iga_step_2_micro_batches"] - measured["iga_step"]
        print(
            f"2 micro-batches vs 1: +{extra / MIB:8.1f} MiB   formula 4·K·Σ m·n = "
            f"{terms['accumulation_sums'] / MIB:8.1f} MiB"
        )
    print(
        f"(ema_beta > 0 would add {terms['ema_state'] / MIB:.1f} MiB of persistent state; run took "
        f"{result['seconds']} s)"
    )
    if args.out:
        from iga.utils.io import atomic_write_json

        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
