"""``iga demo``: the embedded benchmark end to end — build, pretrain (cached), train ERM-SFT and IGA with the
same seed and budget, evaluate both, and write ``report.md`` + ``summary.json`` + a PNG plot.

Everything the demo does is an ordinary library call with a config; the numbers it prints are measured in the
run, whichever method wins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class DemoConfig:
    out_dir: str = "runs/demo"
    preset: str = "small"
    seed: int = 0
    student: str = "small"
    algorithms: tuple[str, ...] = ("erm", "iga")
    algorithm_options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"iga": {"tau": 10.0}})
    # 250 fine-tuning steps and a 150-step base keep the first run, base included, under 10 minutes on 2 cores
    # (README has the measured figure; 300 steps and a 200-step base measured 10 min 47 s). Neither a longer-
    # pretrained base nor more steps was measured to make the student learn the tasks (docs/student-recipes.md).
    steps: int = 250
    pretrain_steps: int | None = 150
    sets_per_batch: int = 4
    lr: float = 3e-3
    lora_r: int = 16
    eval_per_skeleton: int = 5
    max_new_tokens: int | None = None  # None: sized from the data
    # One skeleton per family, with the shortest chains of thought (no skeleton is learned at this budget:
    # docs/student-recipes.md, Table 1b; what the student does learn is the shortcut cues).
    skeletons: tuple[str, ...] | None = (
        "S01_arith_chain",
        "S06_mp_chain",
        "S09_transitive_order",
        "S11_state_tracking",
    )
    cache_dir: str | None = None


def _train_config(cfg: DemoConfig, algorithm: str, data_dir: Path, base_dir: Path) -> Any:
    from iga.config import TrainConfig

    return TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(Path(cfg.out_dir) / algorithm),
        algorithm=algorithm,
        algorithm_options=cfg.algorithm_options.get(algorithm, {}),
        student=cfg.student,
        base_dir=str(base_dir),
        steps=cfg.steps,
        sets_per_batch=cfg.sets_per_batch,
        lr=cfg.lr,
        seed=cfg.seed,
        lora={"r": cfg.lora_r, "alpha": 2 * cfg.lora_r},
        warmup_steps=max(1, cfg.steps // 15),
        checkpoint_every=max(1, cfg.steps // 3),
        log_every=max(1, cfg.steps // 30),
    )


#: val and its cue-stripped copy measure how much each method reads the shortcut cues (docs/experiments.md).
DEMO_EVAL_SPLITS = ("val", "val_nocue", "id_test", "ood_surface", "ood_depth")


def run_demo(cfg: DemoConfig, *, say: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    from iga.experiments.pipeline import run_training
    from iga.experiments.plots import comparison_figure
    from iga.isomers import build_suite, make_config
    from iga.models.pretrain import ensure_base, pretrain_config

    t_start = time.perf_counter()
    out = Path(cfg.out_dir)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    suite = make_config(cfg.preset, **({"skeletons": list(cfg.skeletons)} if cfg.skeletons else {}))
    data_dir = out / "data"
    manifest = build_suite(suite, data_dir, seed=cfg.seed)
    timings["data_seconds"] = round(time.perf_counter() - t0, 2)
    say(f"data: {data_dir} ({manifest.splits['train']['instances']} training isomer sets, cues on)")

    t0 = time.perf_counter()
    base_dir, built = ensure_base(
        pretrain_config(cfg.student, seed=cfg.seed, steps=cfg.pretrain_steps), cache_dir=cfg.cache_dir
    )
    timings["pretrain_seconds"] = round(time.perf_counter() - t0, 2)
    say(f"base: {base_dir} ({'built' if built else 'cached'} in {timings['pretrain_seconds']} s)")

    results: dict[str, dict] = {}
    for algorithm in cfg.algorithms:
        t0 = time.perf_counter()
        run_dir = Path(cfg.out_dir) / algorithm
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # the demo always trains from scratch: its numbers are this run's
        say(f"training {algorithm} for {cfg.steps} steps …")
        results[algorithm] = run_training(
            _train_config(cfg, algorithm, data_dir, base_dir),
            evaluate=True,
            per_skeleton=cfg.eval_per_skeleton,
            progress=progress,
            max_new_tokens=cfg.max_new_tokens,
            eval_splits=DEMO_EVAL_SPLITS,
        )
        timings[f"{algorithm}_seconds"] = round(time.perf_counter() - t0, 2)
    timings["total_seconds"] = round(time.perf_counter() - t_start, 2)

    summary = {alg: _headline(res) for alg, res in results.items()}
    plot = comparison_figure(
        {a: s for a, s in summary.items()}, {a: out / a for a in results}, out / "demo.png"
    )
    payload = {
        "methods": summary,
        "config": asdict(cfg),
        "timings": timings,
        "data_content_hash": manifest.content_hash,
        "base_dir": str(base_dir),
    }
    atomic_write_json(out / "summary.json", payload)
    atomic_write_text(out / "report.md", render_report(cfg, summary, results, timings, plot.name, manifest))
    return payload


def render_saved_report(out_dir: str | Path) -> str:
    """``report.md`` re-rendered from a finished demo's saved files (after a change to the report's wording)."""
    from iga.isomers.build import Manifest

    out = Path(out_dir)
    payload = json.loads((out / "summary.json").read_text())
    config = dict(payload["config"])
    config["algorithms"] = tuple(config["algorithms"])
    config["skeletons"] = tuple(config["skeletons"]) if config.get("skeletons") else None
    cfg = DemoConfig(**config)
    results = {a: json.loads((out / a / "result.json").read_text()) for a in cfg.algorithms}
    manifest = Manifest.load(out / "data")
    return render_report(cfg, payload["methods"], results, payload["timings"], "demo.png", manifest)


def _headline(result: dict) -> dict[str, Any]:
    ev = result.get("eval") or {}
    s = ev.get("summary") or {}
    return {
        "n_id": s.get("n_id"),
        "n_ood": s.get("n_ood"),
        "id_accuracy": s.get("id_accuracy"),
        "ood_accuracy": s.get("ood_accuracy"),
        "ood_depth_accuracy": s.get("ood_depth_accuracy"),
        "val_accuracy": s.get("val_accuracy"),
        "val_nocue_accuracy": s.get("val_nocue_accuracy"),
        "cue_follow": s.get("cue_follow"),
        "cue_follow_nocue": s.get("cue_follow_nocue"),
        "n_wrong_cue": s.get("n_wrong_cue"),
        "lcs": (ev.get("lcs") or {}).get("canonical"),
        "lcs_permutation_baseline": (ev.get("lcs") or {}).get("permutation_mean"),
        "step_time_s": result.get("train", {}).get("step_time_s"),
        "train_seconds": result.get("train", {}).get("train_seconds"),
    }


def _fmt(x: Any, pct: bool = True) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def render_report(
    cfg: DemoConfig, summary: dict, results: dict, timings: dict, plot_name: str, manifest: Any
) -> str:
    skeletons = manifest.config.get("skeletons")
    lines = [
        "# iga demo report",
        "",
        f"Generated by `iga demo` (seed {cfg.seed}). Regenerate with `make demo` or `iga demo --out {cfg.out_dir}`.",
        "",
        "| method | ID acc % | OOD-surface acc % | OOD-depth acc % | LCS (↓) | step time s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for alg, s in summary.items():
        lines.append(
            f"| {alg} | {_fmt(s['id_accuracy'])} | {_fmt(s['ood_accuracy'])} | "
            f"{_fmt(s['ood_depth_accuracy'])} | {_fmt(s['lcs'], False)} | {_fmt(s['step_time_s'], False)} |"
        )
    lines += [
        "",
        "Shortcut reliance (validation problems of the training domains, paired): accuracy with the cues shown and "
        "with them stripped, and how often the answer is the value of a *wrong* cue — shown, and on the same "
        "problems with it hidden.",
        "",
        "| method | val acc % (cues) | val acc % (no cues) | wrong cue followed % | same, cue hidden % |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for alg, s in summary.items():
        lines.append(
            f"| {alg} | {_fmt(s.get('val_accuracy'))} | {_fmt(s.get('val_nocue_accuracy'))} | "
            f"{_fmt(s.get('cue_follow'))} | {_fmt(s.get('cue_follow_nocue'))} |"
        )
    n_id = max((s.get("n_id") or 0) for s in summary.values())
    n_ood = max((s.get("n_ood") or 0) for s in summary.values())
    lines += [
        "",
        "## How to read this",
        "",
        f"One seed, {n_id} ID answers and {n_ood} OOD-surface answers per method: a 95% interval on an accuracy "
        f"near 20% is about ±{_half_width(0.2, max(1, n_ood)):.0f} pp at this n, so differences of a few points "
        "between methods are noise. The demo shows the pipeline end to end on 2 CPU cores; the study "
        "(several seeds, all algorithms, larger evaluation) is what tests the method. The built-in student learns "
        "the chain-of-thought format, not the reasoning: no tokenizer, corpus, size or training-length change "
        "tried lifted it above ~30% in-domain accuracy (docs/student-recipes.md). With longer training it also "
        "learns to read the shortcut cues; the shortcut-reliance table says whether it does here (cues read: "
        "higher validation accuracy with them than without, and wrong cues followed more often when shown).",
        "",
        f"![accuracy and training curves]({plot_name})",
        "",
        "## Setup",
        "",
        f"- Benchmark: IsoBench preset `{cfg.preset}` with shortcut cues in the training domains; skeletons: "
        f"{', '.join(skeletons) if skeletons else 'all'} — one per family, the ones with the shortest "
        "chains of thought. A student trained for minutes on 2 CPU cores learns none of the eleven skeletons "
        "beyond its majority-answer rate (docs/student-recipes.md, Table 1b), so no choice of skeletons makes "
        f"it learn the tasks here; data hash `{manifest.content_hash[:16]}`.",
        f"- Student: built-in `{cfg.student}` base pretrained here for "
        f"{cfg.pretrain_steps or 'its preset number of'} steps (cached), LoRA r={cfg.lora_r} on all linear "
        f"layers; {cfg.steps} steps of {cfg.sets_per_batch} isomer sets × 4 train domains; lr {cfg.lr}; "
        f"same seed and budget for every method.",
        f"- Algorithm options: `{json.dumps(cfg.algorithm_options)}`.",
        f"- Evaluation: {cfg.eval_per_skeleton} isomer sets per skeleton per split, each rendered in all 8 "
        "domains; greedy decoding; strict answer extraction. ID = id_test on the train domains, OOD-surface = "
        "ood_surface on the held-out domains (finance, sports, cooking, fictional); LCS over id_test + "
        "ood_surface hidden states at the CoT anchors (lower is better).",
        "",
        "## Wall time",
        "",
    ]
    order = ["data_seconds", "pretrain_seconds", *(f"{a}_seconds" for a in cfg.algorithms), "total_seconds"]
    keys = [k for k in order if k in timings] + sorted(k for k in timings if k not in order)
    lines += [f"- {k.replace('_seconds', '')}: {timings[k]} s" for k in keys]
    families = ("IsoArith", "IsoDeduce", "IsoRelate", "IsoState")
    lines += [
        "",
        "## Per-family accuracy (strict, %): ID / OOD-surface",
        "",
        "| method | " + " | ".join(families) + " |",
        "| --- |" + " ---: |" * len(families),
    ]
    for alg, res in results.items():
        fam = ((res.get("eval") or {}).get("summary") or {}).get("by_family") or {}
        cells = [
            f"{_fmt((fam.get(f) or {}).get('id_accuracy'))} / {_fmt((fam.get(f) or {}).get('ood_accuracy'))}"
            for f in families
        ]
        lines.append(f"| {alg} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _half_width(p: float, n: int) -> float:
    """Half-width, in percentage points, of a normal-approximation 95% interval for a proportion p at n."""
    return 100 * 1.96 * (p * (1 - p) / n) ** 0.5


def demo_config(**overrides: Any) -> DemoConfig:
    fields_ = {f for f in DemoConfig.__dataclass_fields__}
    unknown = sorted(set(overrides) - fields_)
    if unknown:
        raise ValueError(f"unknown demo option(s) {unknown}; allowed: {sorted(fields_)}")
    return DemoConfig(**overrides)


def quick_demo_config(out_dir: str, **overrides: Any) -> DemoConfig:
    """A seconds-long demo for tests: micro student, tiny preset, a few steps."""
    base: dict[str, Any] = dict(
        out_dir=out_dir,
        preset="tiny",
        student="micro",
        steps=3,
        sets_per_batch=2,
        eval_per_skeleton=1,
        max_new_tokens=24,
        skeletons=("S01_arith_chain", "S06_mp_chain"),
        pretrain_steps=None,
    )
    base.update(overrides)
    return demo_config(**base)
