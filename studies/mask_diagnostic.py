"""Is IGA's conflict measure sampling noise or real disagreement between domains? Measured at a fixed model.

At a fixed LoRA student (a run's config, optionally its trained adapter from ``checkpoint.pt``), the per-domain
full-weight gradients ``G_k`` of N consecutive training batches are summed (no update in between), and the
relative conflict ``V̂ = V / (V + Ḡ² + ε)`` of the *summed* ``G_k`` is reported for N = 1, 2, 4, … together with
the mean per-batch ``V̂`` (what IGA's mask sees at every step). Sampling noise shrinks as N grows; a disagreement
between the domains' true gradients does not. For pure noise the per-batch ``V̂`` is (K − 1)/K on average
(``tests/algorithms/test_iga_math.py``) and the summed one falls toward 0 like the noise it averages.

Run: ``python studies/mask_diagnostic.py runs/shortcut/jobs/<id>/config.json [--trainable-from
runs/shortcut/jobs/<id>] --batches 64 --out docs/results/mask_diagnostic`` (JSON + Markdown + PNG).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EPS = 1e-30


def relative_vhat(domain_grads: Any) -> float:
    """Mean over coordinates of ``V / (V + Ḡ² + ε)`` for ``domain_grads`` shaped (K, ...), in float64 — IGA's own
    statistics (:func:`~iga.algorithms.mask.domain_statistics`, ``normalised_variance(..., "relative")``)."""
    from iga.algorithms.mask import domain_statistics, normalised_variance

    mean, var = domain_statistics(domain_grads.double())
    return float(normalised_variance(var, mean.square(), "relative", EPS).mean())


def _batch_sizes(n: int) -> list[int]:
    sizes, s = [], 1
    while s <= n:
        sizes.append(s)
        s *= 2
    return sizes if sizes[-1] == n else [*sizes, n]


def vhat_vs_batches(
    config: dict[str, Any],
    *,
    batches: int = 64,
    trainable_from: str | Path | None = None,
    first_step: int = 10_000,
    progress: bool = False,
) -> dict[str, Any]:
    """Per N in 1, 2, 4, …, ``batches``: the layer-mean V̂ of the G_k summed over the first N batches, and the mean
    per-batch V̂ over those N batches. ``config`` is a run's ``config.json`` (any algorithm: an ERM run is built,
    the capture added here); ``trainable_from`` a run folder whose ``checkpoint.pt`` supplies the trained LoRA
    weights. Batches are drawn as in training (whole isomer sets of the training split) at steps ``first_step``,
    ``first_step + 1``, …, i.e. in an order the run did not see."""
    import torch

    from iga.config import TrainConfig
    from iga.gradients import DomainGradCapture
    from iga.runs.folder import RunFolder
    from iga.training.run import prepare_run

    cfg = TrainConfig(**{**config, "algorithm": "erm", "algorithm_options": {}, "grad_accum": 1})
    run = prepare_run(cfg)
    source = None
    if trainable_from is not None:
        path = RunFolder(trainable_from).checkpoint
        payload = torch.load(path, map_location="cpu", weights_only=False)
        named = dict(run.model.named_parameters())
        missing = [k for k in payload["trainable"] if k not in named]
        if missing:
            raise ValueError(
                f"{path}: trainable tensor {missing[0]!r} is not a parameter of this run's model"
            )
        with torch.no_grad():
            for k, v in payload["trainable"].items():
                named[k].copy_(v)
        source = {"checkpoint": str(path), "step": int(payload["step"])}
    capture = DomainGradCapture(run.model, space="full")
    sums: dict[str, Any] = {}
    batch_vhats: list[list[float]] = []

    def consume(layer: Any, grads: Any) -> None:
        g = grads.detach().double()
        sums[layer.name] = sums[layer.name] + g if layer.name in sums else g.clone()
        batch_vhats[-1].append(relative_vhat(g))

    capture.set_consumer(consume)
    sizes = set(_batch_sizes(batches))
    rows = []
    k_dom = run.num_domains
    for i in range(batches):
        batch_vhats.append([])
        (batch,) = run.micro_batches(first_step + i)
        run.model.zero_grad(set_to_none=True)
        with capture.domains(batch["domain_ids"], num_domains=k_dom):
            run.domain_losses(batch)[1].mean().backward()
        n = i + 1
        if n in sizes:
            per_layer = {name: relative_vhat(s) for name, s in sums.items()}
            rows.append(
                {
                    "batches": n,
                    "sets_per_domain": n * cfg.sets_per_batch,
                    "vhat_of_sum": statistics.fmean(per_layer.values()),
                    "vhat_of_sum_min_layer": min(per_layer.values()),
                    "vhat_of_sum_max_layer": max(per_layer.values()),
                    "vhat_per_batch": statistics.fmean(v for b in batch_vhats for v in b),
                }
            )
            if progress:
                r = rows[-1]
                print(
                    f"N={n:4d} ({r['sets_per_domain']} sets/domain): V̂ of the summed G_k {r['vhat_of_sum']:.3f} "
                    f"(layers {r['vhat_of_sum_min_layer']:.3f}–{r['vhat_of_sum_max_layer']:.3f}); per batch "
                    f"{r['vhat_per_batch']:.3f}",
                    flush=True,
                )
    return {
        "num_domains": k_dom,
        "noise_floor_per_batch": (k_dom - 1) / k_dom,
        "sets_per_batch": cfg.sets_per_batch,
        "layers": len(sums),
        "trained_from": source,
        "rows": rows,
    }


def render_markdown(results: dict[str, dict[str, Any]], command: str) -> str:
    lines = [
        "# Is the conflict measure noise? V̂ of per-domain gradients summed over N batches, at a fixed model",
        "",
        f"Written by `{command}`; regenerate rather than edit. Relative V̂ = V/(V + Ḡ² + ε), mean over "
        "coordinates and layers. Pure sampling noise gives (K − 1)/K per batch and falls toward 0 when summed.",
        "",
    ]
    for label, res in results.items():
        lines += [
            f"## {label}",
            "",
            f"K = {res['num_domains']} (noise floor per batch {res['noise_floor_per_batch']:.2f}), "
            f"{res['layers']} adapted layers, {res['sets_per_batch']} isomer sets per batch; model: "
            + (f"trained weights from {res['trained_from']['checkpoint']} (step {res['trained_from']['step']})"
               if res["trained_from"] else "the run's initial LoRA (B = 0: the base model's gradients)"),
            "",
            "| batches summed | sets per domain | V̂ of summed G_k (layer min–max) | mean per-batch V̂ |",
            "|---:|---:|---|---:|",
        ]  # fmt: skip
        for r in res["rows"]:
            lines.append(
                f"| {r['batches']} | {r['sets_per_domain']} | {r['vhat_of_sum']:.3f} "
                f"({r['vhat_of_sum_min_layer']:.3f}–{r['vhat_of_sum_max_layer']:.3f}) | {r['vhat_per_batch']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    from iga.sweeps.plots import pyplot, save_png_and_svg

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for label, res in results.items():
        xs = [r["sets_per_domain"] for r in res["rows"]]
        ax.plot(xs, [r["vhat_of_sum"] for r in res["rows"]], marker="o", label=f"{label}: summed G_k")
        floor = res["noise_floor_per_batch"]
    ax.axhline(
        floor, color="grey", linestyle="--", linewidth=0.8, label=f"pure noise, one batch ({floor:.2f})"
    )
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.set_xlabel("isomer sets per domain summed")
    ax.set_ylabel("relative V̂ (mean over layers)")
    ax.set_title("Conflict of per-domain gradients vs amount of data", fontsize=10)
    ax.legend(fontsize=7)
    png = save_png_and_svg(fig, out.with_suffix(".png"))
    return [png, png.with_suffix(".svg")]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from iga.runs.folder import RunFolder
    from iga.utils.io import InputError, atomic_write_json, atomic_write_text
    from iga.utils.provenance import provenance

    parser = argparse.ArgumentParser(
        description="V̂ of per-domain gradients summed over N batches (fixed model)."
    )
    parser.add_argument("config", help="a run's config.json (its data, student and LoRA settings are used)")
    parser.add_argument(
        "--trainable-from",
        action="append",
        default=[],
        help="a run folder whose checkpoint.pt gives trained LoRA weights (repeatable; the initial LoRA is always "
        "measured too)",
    )
    parser.add_argument("--batches", type=int, default=64)
    parser.add_argument("--out", default="docs/results/mask_diagnostic")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be >= 1")
    path = Path(args.config)
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read a run config: {err}", file=path) from err
    results = {"initial LoRA": vhat_vs_batches(config, batches=args.batches, progress=True)}
    for folder in args.trainable_from:
        run_config = RunFolder(folder).config  # name the algorithm when the folder says which
        algorithm = json.loads(run_config.read_text()).get("algorithm") if run_config.is_file() else None
        label = (
            f"trained {algorithm} ({Path(folder).name})" if algorithm else f"trained ({Path(folder).name})"
        )
        results[label] = vhat_vs_batches(config, batches=args.batches, trainable_from=folder, progress=True)
    command = "python studies/mask_diagnostic.py " + " ".join(
        [str(path), *(f"--trainable-from {f}" for f in args.trainable_from), f"--batches {args.batches}",
         f"--out {args.out}"]
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "config": str(path), "results": results, "provenance": provenance()}
    atomic_write_json(out / "mask_diagnostic.json", payload)
    atomic_write_text(out / "mask_diagnostic.md", render_markdown(results, command))
    written = plot(results, out / "mask_diagnostic")
    print("wrote", out / "mask_diagnostic.json", out / "mask_diagnostic.md", *written)
    return payload


if __name__ == "__main__":  # pragma: no cover
    main()
