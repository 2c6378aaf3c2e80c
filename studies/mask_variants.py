"""IGA's mask variants on the micro regime (issue #17): which mask, if any, tells wording from logic?

Every variant is IGA (τ = 10) with one option changed (``mask_space`` or ``mask_stat``), trained with LoRA on the
micro base's four training domains, on the same data and seeds as ERM, and compared with ERM seed by seed:

    python studies/mask_variants.py run --out runs/mask_variants --seeds 0,1,2,3,4   # resumable
    python studies/mask_variants.py table --out runs/mask_variants                    # the Markdown table
    python studies/mask_variants.py selectivity --out runs/mask_variants              # the masks vs the cue
    python studies/mask_variants.py figure --out runs/mask_variants                   # mask_variants.png/.svg
    python studies/mask_variants.py merge --out runs/all --from runs/a,runs/b         # runs made side by side

Data: the ``micro`` preset with cues on half the training renderings and 20 % teacher noise (``cues_noise`` of
studies/micro_regime.py, where ERM still follows the cue at convergence; ``--setting cues`` for cues with clean
labels, into another ``--out``: ``python studies/mask_variants.py run --setting cues --out runs/mask_variants_cues``),
built once with seed 0; the seed of a run
fixes its LoRA initialisation and batch order. Metrics per run (200 answers per skeleton and split):
cue-free accuracy on the training domains (``val_nocue``), wrong-cue following (``val_wrongcue``: every
training-domain problem shown a wrong cue; the share answering the cue's value), ``ood_surface`` accuracy on the
four held-out domains, LCS on ``ood_surface`` with its permutation baseline, step time. The oracle
(ERM on all eight domains, same rows per step) gives the gap each variant should close.

``selectivity`` measures, at one fixed model (the seed-0 ERM run's adapter) and one batch of cued training sets,
what each variant's mask does to the coordinates the cue drives: the mask averaged with the weights ``|G_cue|``
(the gradient of answering the wrong cue's value, on cued prompts) against the weights ``|G_logic|`` (the gradient
of the gold chain of thought and answer on the same prompts without their cue). A mask that tells the cue from
the logic has a smaller cue-weighted mean.

Outputs: ``OUT/mask_variants.json`` (every run's numbers, configs, versions and timings) and
``OUT/selectivity.json``; docs/results.md §8 shows the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import micro_regime

TAU = 10.0
#: The design of record this study varies: coordinate space, variance statistic, all tokens (IGAConfig's default
#: when the study ran; the default is now the sign statistic, which this study chose).
BASE = {"tau": TAU, "mask_space": "coordinate", "mask_stat": "variance"}
#: name -> (algorithm, options). Every IGA variant changes one option of BASE.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "erm": ("erm", {}),
    "iga": ("iga", BASE),
    "iga_factor": ("iga", {**BASE, "mask_space": "factor"}),
    "iga_row": ("iga", {**BASE, "mask_space": "row"}),
    "iga_column": ("iga", {**BASE, "mask_space": "column"}),
    "iga_layer": ("iga", {**BASE, "mask_space": "layer"}),
    "iga_subspace": ("iga", {**BASE, "mask_space": "subspace"}),
    "iga_sign": ("iga", {**BASE, "mask_stat": "sign"}),
    "iga_logic": ("iga", {**BASE, "stat_tokens": "logic"}),
}
#: The data setting of studies/micro_regime.py (``--setting``): cues on half the renderings + 20 % teacher noise.
DEFAULT_SETTING = "cues_noise"
SPLITS = ("val_nocue", "val_wrongcue", "ood_surface")
METRICS = {  # name in the table -> how it is read from a run's summary
    "cue-free ID": ("accuracy", "val_nocue|all"),
    "wrong cue followed": ("wrong_cue_follow", "all"),
    "ood_surface": ("accuracy", "ood_surface|all"),
}


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def train_one(out: Path, variant: str, seed: int, base: Path, args: Any) -> dict[str, Any]:
    """One run (read back when finished): its metrics, step time and LCS."""
    oracle = variant == "oracle"
    algorithm, options = ("erm", {}) if oracle else VARIANTS[variant]
    data = micro_regime.build_data(out, args.setting, oracle=oracle, seed=0)
    domains = micro_regime.TRAIN_DOMAINS + (micro_regime.HELDOUT_DOMAINS if oracle else [])
    run_args = SimpleNamespace(
        steps=args.steps, sets=args.sets, lr=args.lr, rank=args.rank, seed=seed, fresh=args.fresh
    )
    name = run_name(variant, seed)
    t0 = time.perf_counter()
    result = micro_regime.train_and_eval(
        out, name, data, base, run_args, SPLITS, domains, algorithm=algorithm, options=options
    )
    groups = micro_regime.per_group(out / "runs" / name, [data])
    lcs = (result["eval"].get("lcs") or {}) if result.get("eval") else {}
    return {
        "variant": variant,
        "seed": seed,
        "algorithm": algorithm,
        "options": options,
        "train_domains": domains,
        "steps": args.steps,
        "train_seconds": result["train"]["train_seconds"],
        "step_time_s": result["train"]["step_time_s"],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "lcs": lcs.get("canonical"),
        "lcs_permutation_baseline": lcs.get("permutation_mean"),
        "last_log": _last_log(out / "runs" / name),
        **groups,
    }


def _last_log(run_dir: Path) -> dict[str, Any]:
    from iga.runs.folder import RunFolder

    path = RunFolder(run_dir).log
    lines = path.read_text().splitlines() if path.exists() else []
    last = json.loads(lines[-1]) if lines else {}
    return {
        k: v for k, v in last.items() if k in ("step", "loss", "mask_mean", "mask_below_half", "vhat_mean")
    }


def run(args: Any) -> None:
    import torch

    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_base_cache import ensure_micro_base
    from iga.utils.io import atomic_write_json
    from iga.utils.provenance import provenance

    torch.set_flush_denormal(True)
    out = Path(args.out)
    base = Path(args.base) if args.base else ensure_micro_base(MicroBaseConfig())[0]
    path = out / "mask_variants.json"
    summary = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    if summary.get("setting", args.setting) != args.setting:
        raise SystemExit(
            f"--setting {args.setting}: {path} holds runs of setting {summary['setting']!r}; use another --out"
        )
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS and v != "oracle"]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {', '.join([*VARIANTS, 'oracle'])}")
    seeds = [int(s) for s in args.seeds.split(",")]
    # Every invocation that added runs (a study extended seed by seed keeps all of them).
    command = "python studies/mask_variants.py run " + " ".join(sys.argv[2:])
    commands = summary.get("commands") or ([summary["command"]] if "command" in summary else [])
    summary["commands"] = commands + ([command] if command not in commands else [])
    # Seed-major: after each seed every variant has a paired run, so a study stopped early is still paired.
    for seed in seeds:
        for variant in variants:
            name = run_name(variant, seed)
            if name in summary["runs"] and not args.fresh:
                # Recorded already (this folder, or a summary copied back from docs/results/: the run folders
                # need not survive for a study to continue across machines).
                print(f"{name}: recorded, skipped", flush=True)
                continue
            summary["runs"][name] = train_one(out, variant, seed, base, args)
            summary.update(
                setting=args.setting,
                shortcut=micro_regime.SETTINGS[args.setting],
                base={"dir": str(base), **json.loads((base / "base.json").read_text())},
                provenance=provenance(),
            )
            summary.pop("command", None)
            atomic_write_json(path, summary)
            r = summary["runs"][name]
            print(
                f"{name}: cue-free {_pct(_read(r, METRICS['cue-free ID']))} follow "
                f"{_pct(_read(r, METRICS['wrong cue followed']))} ood {_pct(_read(r, METRICS['ood_surface']))} "
                f"({r['train_seconds']:.0f} s)",
                flush=True,
            )
    print(render_table(summary))


def merge(out: Path, sources: list[Path]) -> dict[str, Any]:
    """Merge the summaries of several ``--out`` folders (e.g. two processes run side by side on other seeds) into
    ``out/mask_variants.json``. The folders must hold one setting and one base; a run recorded twice must agree."""
    from iga.utils.io import atomic_write_json

    target = out / "mask_variants.json"
    merged = json.loads(target.read_text()) if target.exists() else {"runs": {}}
    for source in sources:
        path = source / "mask_variants.json"
        if not path.exists():
            raise SystemExit(f"merge: {path} does not exist")
        other = json.loads(path.read_text())
        for key in ("setting", "base"):
            if key in merged and merged[key] != other.get(key):
                raise SystemExit(f"merge: {path} has another {key} than {target}: {other.get(key)!r}")
        for name, run in other["runs"].items():
            if name in merged["runs"] and merged["runs"][name]["last_log"] != run["last_log"]:
                raise SystemExit(f"merge: run {name} in {path} differs from the one already in {target}")
            merged["runs"][name] = run
        merged["commands"] = list(dict.fromkeys([*merged.get("commands", []), *other.get("commands", [])]))
        for key in ("setting", "shortcut", "base", "provenance"):
            merged[key] = other[key]
    merged["runs"] = dict(sorted(merged["runs"].items()))
    atomic_write_json(target, merged)
    return merged


def _read(run: dict[str, Any], where: tuple[str, str]) -> float | None:
    stat = run.get(where[0], {}).get(where[1])
    return None if stat is None else stat["acc"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def paired(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of per-seed differences and its 95 % t interval (half-width 0 for one seed: no interval)."""
    from iga.sweeps.sweep_results import mean_ci

    stat = mean_ci(diffs)
    half = stat.ci95 or 0.0
    return stat.mean, stat.mean - half, stat.mean + half


def _by_variant(summary: dict[str, Any]) -> dict[str, dict[int, dict]]:
    """``{variant: {seed: run}}`` of a study summary."""
    out: dict[str, dict[int, dict]] = {}
    for r in summary["runs"].values():
        out.setdefault(r["variant"], {})[r["seed"]] = r
    return out


def aggregate(summary: dict[str, Any]) -> dict[str, Any]:
    """Per variant: mean of each metric over its seeds, the paired difference to ERM on the seeds both have, the
    share of the ERM-to-oracle ood_surface gap closed, LCS, step time x ERM."""
    by_variant = _by_variant(summary)
    erm = by_variant.get("erm", {})
    oracle = by_variant.get("oracle", {})
    oracle_ood = _mean([_read(r, METRICS["ood_surface"]) for r in oracle.values()])
    erm_step = _mean([r["step_time_s"] for r in erm.values()])
    table = {}
    for variant, seeds in by_variant.items():
        row: dict[str, Any] = {"seeds": sorted(seeds)}
        for metric, where in METRICS.items():
            row[metric] = _mean([_read(r, where) for r in seeds.values()])
            shared = [s for s in seeds if s in erm]
            if variant not in ("erm", "oracle") and shared:
                diffs = [_read(seeds[s], where) - _read(erm[s], where) for s in shared]
                row[f"{metric} - ERM"] = paired(diffs)
        row["lcs"] = _mean([r["lcs"] for r in seeds.values()])
        row["lcs_permutation_baseline"] = _mean([r["lcs_permutation_baseline"] for r in seeds.values()])
        row["step_time_s"] = _mean([r["step_time_s"] for r in seeds.values()])
        row["step_x_erm"] = row["step_time_s"] / erm_step if erm_step else None
        erm_ood = _mean([_read(erm[s], METRICS["ood_surface"]) for s in seeds if s in erm])
        if oracle_ood is not None and erm_ood is not None and variant not in ("erm", "oracle"):
            gap = oracle_ood - erm_ood
            row["gap_closed"] = (row["ood_surface"] - erm_ood) / gap if gap > 0 else None
        table[variant] = row
    return {"oracle_ood_surface": oracle_ood, "variants": table}


def _mean(xs: list[float | None]) -> float | None:
    from iga.sweeps.sweep_results import mean_ci

    return mean_ci(xs).mean


def render_table(summary: dict[str, Any]) -> str:
    agg = aggregate(summary)
    order = [v for v in [*VARIANTS, "oracle"] if v in agg["variants"]]
    lines = [
        "| variant | seeds | cue-free ID % | Δ vs ERM | wrong cue followed % | Δ vs ERM | ood_surface % | Δ vs ERM "
        "| gap closed | LCS (perm.) | step × ERM |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in order:
        row = agg["variants"][variant]
        cells = [variant, str(len(row["seeds"]))]
        for metric in METRICS:
            cells.append(_pct(row[metric]))
            diff = row.get(f"{metric} - ERM")
            cells.append(
                "–" if diff is None else f"{100 * diff[0]:+.1f} [{100 * diff[1]:+.1f}, {100 * diff[2]:+.1f}]"
            )
        gap = row.get("gap_closed")
        cells.append("–" if gap is None else f"{100 * gap:+.0f} %")
        lcs, perm = row["lcs"], row["lcs_permutation_baseline"]
        cells.append("–" if lcs is None else f"{lcs:.3f} ({perm:.3f})")
        cells.append("–" if row["step_x_erm"] is None else f"{row['step_x_erm']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    runs = list(summary["runs"].values())
    per_run = {
        v: _mean([r["wall_seconds"] / 60 for r in runs if r["variant"] == v and "wall_seconds" in r])
        for v in order
    }
    lines += [
        "",
        f"Cost: {len(runs)} runs, {sum(r.get('wall_seconds', 0) for r in runs) / 3600:.1f} wall-hours; minutes per "
        "run with evaluation: "
        + ", ".join(f"{v} {m:.1f}" for v, m in per_run.items() if m is not None)
        + ".",
    ]
    pick = select_by_validation(agg)
    if pick:
        lines += [
            "",
            f"Training-domain validation (cue-free `val_nocue`, mean over seeds) picks **{pick}** among the IGA "
            "variants.",
        ]
        against = _paired_against(summary, pick, "iga")
        if against:
            lines[-1] += f" Paired against `iga` (the variance statistic) on the same seeds: {against}."
    return "\n".join(lines)


def _paired_against(summary: dict[str, Any], variant: str, other: str) -> str:
    """``variant − other`` per metric, paired on their shared seeds, as "name +m [lo, hi]" phrases."""
    if variant == other:
        return ""
    runs = _by_variant(summary)
    shared = sorted(set(runs.get(variant, {})) & set(runs.get(other, {})))
    if not shared:
        return ""
    phrases = []
    for metric, where in METRICS.items():
        mean, lo, hi = paired([_read(runs[variant][s], where) - _read(runs[other][s], where) for s in shared])
        phrases.append(f"{metric} {100 * mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points")
    return ", ".join(phrases) + f" ({len(shared)} seeds)"


def render_selectivity(payload: dict[str, Any]) -> str:
    """The selectivity table: each variant's mask weighted by the cue's gradient and by the logic's."""
    lines = [
        f"Masks at `{payload['model']}` on {payload['sets']} noise-free training isomer sets (every skeleton in "
        "turn):",
        "",
        "| variant | mask weighted by \\|G_cue\\| | mask weighted by \\|G_logic\\| | ratio cue / logic |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in payload["variants"].items():
        lines.append(
            f"| {name} | {row['mask_on_cue']:.4f} | {row['mask_on_logic']:.4f} | {row['ratio']:.2f} |"
        )
    return "\n".join(lines)


def select_by_validation(agg: dict[str, Any]) -> str | None:
    """The IGA variant with the highest mean cue-free training-domain validation accuracy (the selection rule of
    the shipped default: no held-out domain is looked at)."""
    scored = {
        v: row["cue-free ID"]
        for v, row in agg["variants"].items()
        if v.startswith("iga") and row["cue-free ID"] is not None
    }
    return max(scored, key=scored.__getitem__) if scored else None


def figure(summary: dict[str, Any], selectivity_payload: dict[str, Any] | None, out: Path) -> Path:
    """Per run: held-out (``ood_surface``) accuracy against wrong-cue following, one colour per variant, the
    variant's mean as a large marker; beside it the mask selectivity ratios (when measured)."""
    from iga.sweeps.plots import pyplot, save_png_and_svg

    plt = pyplot()
    panels = 2 if selectivity_payload else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.6), squeeze=False)
    ax = axes[0][0]
    order = [v for v in [*VARIANTS, "oracle"] if any(r["variant"] == v for r in summary["runs"].values())]
    colours = plt.get_cmap("tab10")
    for i, variant in enumerate(order):
        runs = [r for r in summary["runs"].values() if r["variant"] == variant]
        xs = [100 * _read(r, METRICS["wrong cue followed"]) for r in runs]
        ys = [100 * _read(r, METRICS["ood_surface"]) for r in runs]
        ax.scatter(xs, ys, s=18, alpha=0.5, color=colours(i % 10))
        ax.scatter([sum(xs) / len(xs)], [sum(ys) / len(ys)], s=90, color=colours(i % 10), label=variant,
                   edgecolors="black")  # fmt: skip
    ax.set_xlabel("wrong cue followed, training domains (%)")
    ax.set_ylabel("ood_surface accuracy, held-out domains (%)")
    ax.set_title(f"micro regime, {summary.get('setting', DEFAULT_SETTING)}: one small dot per seed")
    ax.legend(fontsize=7, ncol=2)
    if selectivity_payload:
        ax = axes[0][1]
        names = list(selectivity_payload["variants"])
        ratios = [selectivity_payload["variants"][n]["ratio"] for n in names]
        ax.barh(names, ratios, color="tab:gray")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("mask on the cue's coordinates / on the logic's (< 1: selective)")
        ax.set_title("selectivity at the seed-0 ERM model")
    return save_png_and_svg(fig, out)


# ------------------------------------------------------------------------------------------------ selectivity
def selectivity(args: Any) -> dict[str, Any]:
    """The masks of every variant at one fixed model, weighted by the cue's gradient and by the logic's."""
    import torch

    from iga.utils.io import atomic_write_json
    from iga.utils.provenance import provenance

    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    out = Path(args.out)
    run_dir = out / "runs" / run_name("erm", 0)
    if not (run_dir / "adapter").exists():
        raise SystemExit(
            f"selectivity needs the seed-0 ERM run: {run_dir}/adapter is missing (run `run` first)"
        )
    model, tok = _load_run_model(run_dir)
    data = micro_regime.build_data(out, args.setting, oracle=False, seed=0)
    batches = _selectivity_batches(data, tok, args.sets)
    results: dict[str, Any] = {}
    for variant, (algorithm, options) in VARIANTS.items():
        if algorithm != "iga" or options.get("mask_space") == "factor":
            continue  # the factor mask acts on A and B, not on the weight coordinates the ground truth lives on
        results[variant] = _variant_selectivity(model, batches, options)
        print(variant, {k: round(v, 4) for k, v in results[variant].items()}, flush=True)
    payload = {
        "model": str(run_dir),
        "sets": args.sets,
        "variants": results,
        "command": "python studies/mask_variants.py selectivity " + " ".join(sys.argv[2:]),
        "provenance": provenance(),
    }
    atomic_write_json(out / "selectivity.json", payload)
    return payload


def _load_run_model(run_dir: Path) -> tuple[Any, Any]:
    from peft import PeftModel

    from iga.config import TrainConfig
    from iga.models.pretrain import load_base

    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    base, tok = load_base(Path(cfg.base_dir))
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter"), is_trainable=True)
    return model.double(), tok


def _selectivity_batches(data: Path, tok: Any, sets: int) -> dict[str, dict]:
    """Batches over the same ``sets`` noise-free training isomer sets, taken in turn from each skeleton (domain-major,
    one row per training domain):
    ``cued`` (as trained on: the rendering with a wrong cue, the gold CoT and answer: what the per-domain
    statistics see), ``logic`` (the prompt without its cue, gold CoT and answer) and ``cue`` (the wrong-cue prompt,
    the gold CoT ending in the cue's value instead of the answer)."""
    from iga.isomers.build import with_final_answer
    from iga.isomers.shortcuts import strip_cue, with_wrong_cue
    from iga.training.data import IsomerCollator, IsomerSet
    from iga.utils.io import read_jsonl

    domains = micro_regime.TRAIN_DOMAINS
    by_set: dict[str, dict[str, dict]] = {}
    for r in read_jsonl(data / "train.jsonl"):
        if r["domain"] in domains and r.get("teacher_answer") is None:
            by_set.setdefault(r["instance_id"], {})[r["domain"]] = r
    by_skeleton: dict[str, list[dict[str, dict]]] = {}
    for s in by_set.values():
        if len(s) == len(domains):
            by_skeleton.setdefault(s[domains[0]]["skeleton"], []).append(s)
    # Round-robin over the skeletons, so that every skeleton's wording is in the batch.
    interleaved = [
        s for group in itertools.zip_longest(*by_skeleton.values()) for s in group if s is not None
    ]
    complete = interleaved[:sets]
    if len(complete) < sets:
        raise SystemExit(f"selectivity: only {len(complete)} complete noise-free training sets, asked {sets}")

    def variant(r: dict, kind: str) -> dict:
        wrong = with_wrong_cue(r)
        if kind == "logic":
            return {**strip_cue(r), "id": None}
        if kind == "cued":
            return {**wrong, "id": None}
        return {**wrong, "id": None, "gold_cot": with_final_answer(r["gold_cot"], wrong["shortcut"]["value"])}

    collate = IsomerCollator(tok, max_length=512, logic_labels=True)  # logic_labels: for stat_tokens="logic"
    return {
        kind: collate(
            [
                IsomerSet(s["math"]["instance_id"], tuple(variant(s[d], kind) for d in domains))
                for s in complete
            ]
        )
        for kind in ("cued", "logic", "cue")
    }


def _variant_selectivity(model: Any, batches: dict[str, dict], options: dict[str, Any]) -> dict[str, float]:
    from iga import create_iga_optimizer
    from iga.gradients import per_domain_token_loss
    from iga.gradients.reference import per_domain_grads_kbackward

    num_domains = len(micro_regime.TRAIN_DOMAINS)

    def losses(batch: dict) -> Any:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return per_domain_token_loss(logits, batch["labels"], batch["domain_ids"], num_domains)

    opt = create_iga_optimizer(model, lr=0.0, base="sgd", **options)
    opt.keep_masks, opt.num_domains = True, num_domains
    cued, captured = batches["cued"], num_domains
    if (
        options.get("stat_tokens") == "logic"
    ):  # as the trainer does: the rows again, logic labels, domains K..2K-1
        from iga.training.run import with_logic_rows

        cued, captured = with_logic_rows(cued, num_domains), 2 * num_domains
    with opt.capture.domains(cued["domain_ids"], num_domains=captured):
        logits = model(input_ids=cued["input_ids"], attention_mask=cued["attention_mask"]).logits
        per_domain_token_loss(logits, cued["labels"], cued["domain_ids"], captured).mean().backward()
    opt.step()
    masks, layers = opt.last_masks, opt.capture.layers
    opt.capture.detach()
    model.zero_grad(set_to_none=True)
    # The full-weight gradients of the two ground-truth objectives (one "domain" each).
    g_cue = per_domain_grads_kbackward(
        model, lambda _: losses(batches["cue"]).mean() - losses(batches["cued"]).mean(), 1, space="full"
    )
    g_logic = per_domain_grads_kbackward(model, lambda _: losses(batches["logic"]).mean(), 1, space="full")
    return mask_weighted_means(masks, [layer.name for layer in layers], g_cue, g_logic)


def mask_weighted_means(
    masks: dict[str, Any], names: list[str], g_cue: dict[str, Any], g_logic: dict[str, Any]
) -> dict[str, float]:
    """``Σ M·w / Σ w`` over the layers ``names`` for the weights ``w = |G_cue|`` and ``w = |G_logic|`` per coordinate
    (``g_*[name]`` is ``(1, m, n)``), or, for a subspace mask ``(U_r, M, Vh_r)``, the two gradients' energies along
    its directions ``(u_iᵀ G v_i)²``; and the ratio cue / logic (< 1: the mask suppresses what the cue drives)."""
    sums = {"cue": [0.0, 0.0], "logic": [0.0, 0.0]}
    for name in names:
        mask = masks.get(name)
        if mask is None:
            continue
        for key, grads in (("cue", g_cue), ("logic", g_logic)):
            full = grads[name][0]
            if isinstance(mask, tuple):  # subspace: (U_r, M, Vh_r)
                u, m, vh = mask
                w = ((u.mT @ full.to(u.dtype)) * vh).sum(-1).square()
            else:
                m, w = mask, full.to(mask.dtype).abs()
            sums[key][0] += float((m * w).sum())
            sums[key][1] += float(w.sum())
    cue_mean, logic_mean = (s[0] / s[1] if s[1] else float("nan") for s in (sums["cue"], sums["logic"]))
    return {"mask_on_cue": cue_mean, "mask_on_logic": logic_mean, "ratio": cue_mean / logic_mean}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["run", "table", "selectivity", "figure", "merge"])
    parser.add_argument("--out", default="runs/mask_variants")
    parser.add_argument(
        "--base", default=None, help="a base folder (default: the shipped default micro base)"
    )
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "oracle"]))
    parser.add_argument("--steps", type=int, default=600, help="LoRA steps per run")
    parser.add_argument(
        "--sets", type=int, default=8, help="isomer sets per step; selectivity: sets in its batch"
    )
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    parser.add_argument(
        "--from", dest="sources", default="", help="merge: comma-separated --out folders to merge"
    )
    parser.add_argument(
        "--setting",
        default=DEFAULT_SETTING,
        choices=sorted(micro_regime.SETTINGS),
        help="the data setting (studies/micro_regime.py SETTINGS); one per --out folder",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "table":
        print(render_table(json.loads((Path(args.out) / "mask_variants.json").read_text())))
        sel = Path(args.out) / "selectivity.json"
        if sel.exists():
            print("\n" + render_selectivity(json.loads(sel.read_text())))
    elif args.command == "merge":
        merged = merge(Path(args.out), [Path(p) for p in args.sources.split(",") if p])
        print(f"{len(merged['runs'])} runs in {Path(args.out) / 'mask_variants.json'}")
    elif args.command == "figure":
        out = Path(args.out)
        sel = out / "selectivity.json"
        path = figure(
            json.loads((out / "mask_variants.json").read_text()),
            json.loads(sel.read_text()) if sel.exists() else None,
            out / "mask_variants.png",
        )
        print(path)
    else:
        selectivity(args)


if __name__ == "__main__":
    main()
