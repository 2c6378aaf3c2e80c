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
    # The dataclass defaults are the standard regime's (S01-S11 on a BPE student that does not learn them);
    # `iga demo` runs `micro_demo_config()`: the word-level micro regime (M01-M04, the shipped skill base, then
    # LoRA; docs/student-recipes.md, "The micro regime").
    regime: str = "standard"
    preset: str = "small"
    seed: int = 0
    student: str = "small"
    algorithms: tuple[str, ...] = ("erm", "iga")
    oracle: bool = False  # micro: ERM on all 8 domains, the ceiling of the held-out accuracy
    algorithm_options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"iga": {"tau": 10.0}})
    # The demo's data setting: cues on half of the training renderings and 20 % teacher noise, where ERM still
    # follows wrong cues at the end of training (docs/student-recipes.md, "The shortcut bites").
    shortcut: dict[str, Any] = field(default_factory=lambda: {"share": 0.5, "noise": 0.2})
    # 250 fine-tuning steps and a 150-step base keep the standard demo's first run, base included, under 10
    # minutes on 2 cores (README has the measured figure).
    steps: int = 250
    pretrain_steps: int | None = 150  # None: the regime's default (micro: MicroBaseConfig.steps)
    sets_per_batch: int = 4
    lr: float = 3e-3
    lora_r: int = 16
    eval_per_skeleton: int = 5
    max_new_tokens: int | None = None  # None: sized from the data
    # None: the preset's (micro: M01-M04). Standard: one skeleton per family, the shortest chains of thought.
    skeletons: tuple[str, ...] | None = (
        "S01_arith_chain",
        "S06_mp_chain",
        "S09_transitive_order",
        "S11_state_tracking",
    )
    data_sizes: dict[str, int] = field(default_factory=dict)  # e.g. {"train_per_skeleton": 8} (quick tests)
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime: {self.regime!r} is not one of {', '.join(REGIMES)}")


REGIMES = ("micro", "standard")


def _train_config(
    cfg: DemoConfig, name: str, data_dir: Path, base_dir: Path, train_domains: list[str] | None = None
) -> Any:
    from iga.config import TrainConfig

    algorithm = "erm" if name == "oracle" else name
    return TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(Path(cfg.out_dir) / name),
        algorithm=algorithm,
        **({"train_domains": train_domains} if train_domains else {}),
        algorithm_options=cfg.algorithm_options.get(algorithm, {}),
        student=cfg.student,
        base_dir=str(base_dir),
        steps=cfg.steps,
        # the oracle trains on 8 domains: fewer sets per step, so that every method sees the same rows per step
        sets_per_batch=max(1, cfg.sets_per_batch * 4 // len(train_domains))
        if train_domains and len(train_domains) > 4
        else cfg.sets_per_batch,
        lr=cfg.lr,
        seed=cfg.seed,
        lora={"r": cfg.lora_r, "alpha": 2 * cfg.lora_r},
        warmup_steps=max(1, cfg.steps // 15),
        checkpoint_every=max(1, cfg.steps // 3),
        log_every=max(1, cfg.steps // 30),
    )


#: val and its cue-stripped copy measure how much each method reads the shortcut cues (docs/experiments.md).
DEMO_EVAL_SPLITS = ("val", "val_nocue", "val_wrongcue", "id_test", "ood_surface", "ood_depth")


def _suite(cfg: DemoConfig, **extra: Any) -> Any:
    from iga.isomers import make_config

    options: dict[str, Any] = {**cfg.data_sizes, **extra}
    if cfg.skeletons:
        options["skeletons"] = list(cfg.skeletons)
    if cfg.regime == "micro":
        options["shortcut"] = dict(cfg.shortcut)
    return make_config(cfg.preset, **options)


def _base(cfg: DemoConfig) -> tuple[Path, bool]:
    if cfg.regime == "micro":
        import dataclasses

        from iga.models.micro_base import MicroBaseConfig
        from iga.models.micro_base_cache import ensure_micro_base

        base_cfg = MicroBaseConfig(student=cfg.student, seed=cfg.seed)
        if cfg.pretrain_steps is not None:
            # another length is a try-out (tests, --quick): no polish phase, which is tuned for the default's
            base_cfg = dataclasses.replace(base_cfg, steps=cfg.pretrain_steps, polish_steps=0)
        return ensure_micro_base(base_cfg, cache_dir=cfg.cache_dir)
    from iga.models.pretrain import ensure_base, pretrain_config

    return ensure_base(
        pretrain_config(cfg.student, seed=cfg.seed, steps=cfg.pretrain_steps), cache_dir=cfg.cache_dir
    )


def run_demo(cfg: DemoConfig, *, say: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    import torch

    from iga.isomers import build_suite
    from iga.runs.pipeline import run_training
    from iga.sweeps.plots import comparison_figure

    torch.set_flush_denormal(True)  # denormal weights made small models 1.5-2x slower on CPU
    t_start = time.perf_counter()
    out = Path(cfg.out_dir)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data_dir = out / "data"
    manifest = build_suite(_suite(cfg), data_dir, seed=cfg.seed)
    runs: dict[str, tuple[Path, list[str] | None]] = {a: (data_dir, None) for a in cfg.algorithms}
    if cfg.oracle:  # the same evaluation instances; train/val also render the held-out domains
        oracle_manifest = build_suite(_suite(cfg, oracle=True), out / "data_oracle", seed=cfg.seed)
        runs["oracle"] = (
            out / "data_oracle",
            [d["name"] for d in oracle_manifest.domains if d["role"] != "stress"],
        )
    timings["data_seconds"] = round(time.perf_counter() - t0, 2)
    say(
        f"data: {data_dir} ({manifest.splits['train']['instances']} training isomer sets, cues {manifest.config['shortcut']})"
    )

    t0 = time.perf_counter()
    base_dir, built = _base(cfg)
    timings["pretrain_seconds"] = round(time.perf_counter() - t0, 2)
    say(f"base: {base_dir} ({'built' if built else 'cached'} in {timings['pretrain_seconds']} s)")

    results: dict[str, dict] = {}
    for name, (run_data, train_domains) in runs.items():
        t0 = time.perf_counter()
        run_dir = Path(cfg.out_dir) / name
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # the demo always trains from scratch: its numbers are this run's
        say(f"training {name} for {cfg.steps} steps …")
        results[name] = run_training(
            _train_config(cfg, name, run_data, base_dir, train_domains),
            evaluate=True,
            per_skeleton=cfg.eval_per_skeleton,
            progress=progress,
            max_new_tokens=cfg.max_new_tokens,
            eval_splits=DEMO_EVAL_SPLITS,
        )
        timings[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
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
        "base_built": built,
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
    runs = [*config["algorithms"], *(["oracle"] if config.get("oracle") else [])]
    config["skeletons"] = tuple(config["skeletons"]) if config.get("skeletons") else None
    cfg = DemoConfig(**config)
    from iga.runs.folder import RunFolder

    results = {a: RunFolder(out / a).read_result() for a in runs}
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
        "val_wrongcue_accuracy": s.get("val_wrongcue_accuracy"),
        "wrongcue_follow": s.get("wrongcue_follow"),
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
        "Shortcut reliance (validation problems of the training domains): accuracy with the cues as built, with "
        "them stripped, and with a *wrong* cue shown on every problem; how often the answer is a wrong cue's value "
        "(on the built problems whose cue is wrong, and on the all-wrong copy).",
        "",
        "| method | val acc % (cues) | no cues | wrong cue on all | wrong cue followed % | on all |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for alg, s in summary.items():
        lines.append(
            f"| {alg} | {_fmt(s.get('val_accuracy'))} | {_fmt(s.get('val_nocue_accuracy'))} | "
            f"{_fmt(s.get('val_wrongcue_accuracy'))} | {_fmt(s.get('cue_follow'))} | {_fmt(s.get('wrongcue_follow'))} |"
        )
    n_id = max((s.get("n_id") or 0) for s in summary.values())
    n_ood = max((s.get("n_ood") or 0) for s in summary.values())
    if cfg.regime == "micro":
        reading = (
            "The micro regime (docs/student-recipes.md): a 1 M-parameter word-level student whose skill base "
            "(neutral wording + every domain's narrative text) is adapted with LoRA on the four training domains. "
            "The oracle is ERM trained on all eight domains: the ceiling of held-out accuracy. The data setting "
            f"is `{json.dumps(cfg.shortcut, sort_keys=True)}` (cue share; teacher noise: wrong final answers, with the cue keyed to "
            "them, as in Colored-MNIST). Whichever method wins, these are the numbers this run measured."
        )
    else:
        reading = (
            "The built-in student learns the chain-of-thought format, not the reasoning: no tokenizer, corpus, "
            "size or training-length change tried lifted it above ~30% in-domain accuracy "
            "(docs/student-recipes.md). With longer training it also learns to read the shortcut cues."
        )
    lines += [
        "",
        "## How to read this",
        "",
        f"One seed, {n_id} ID answers and {n_ood} OOD-surface answers per method: a 95% interval on an accuracy "
        f"near 50% is about ±{_half_width(0.5, max(1, n_ood)):.0f} pp at this n, so differences of a few points "
        "between methods are noise; the study (several seeds, all algorithms) is what tests the method. "
        + reading,
        "",
        f"![accuracy and training curves]({plot_name})",
        "",
        "## Setup",
        "",
        f"- Benchmark: IsoBench preset `{cfg.preset}`; skeletons: {', '.join(skeletons) if skeletons else 'all'}; "
        f"cues: `{json.dumps(manifest.config.get('shortcut'), sort_keys=True)}`; data hash `{manifest.content_hash[:16]}`.",
        f"- Student: built-in `{cfg.student}`, {cfg.regime} base "
        f"({'default budget' if cfg.pretrain_steps is None else f'{cfg.pretrain_steps} steps'}, cached), LoRA "
        f"r={cfg.lora_r} on all linear layers; {cfg.steps} steps of {cfg.sets_per_batch} isomer sets per domain; "
        f"lr {cfg.lr}; same seed and rows per step for every method"
        + (" (the oracle: half the sets, on 8 domains)." if cfg.oracle else "."),
        f"- Algorithm options: `{json.dumps(cfg.algorithm_options)}`"
        + (f"; IGA's mask: {_iga_mask(results['iga'])}." if "iga" in results else "."),
        f"- Evaluation: {cfg.eval_per_skeleton} isomer sets per skeleton per split, each rendered in all 8 "
        "domains; greedy decoding; strict answer extraction. ID = id_test on the train domains, OOD-surface = "
        "ood_surface on the held-out domains (finance, sports, cooking, fictional); LCS over id_test + "
        "ood_surface hidden states at the CoT anchors (lower is better).",
        "",
        "## Wall time",
        "",
    ]
    names = [*cfg.algorithms, *(["oracle"] if cfg.oracle else [])]
    order = ["data_seconds", "pretrain_seconds", *(f"{a}_seconds" for a in names), "total_seconds"]
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


def _iga_mask(result: dict) -> str:
    """IGA's mask space and statistic as the run recorded them (``train.algorithm_hparams``)."""
    hparams = (result.get("train") or {}).get("algorithm_hparams") or {}
    if "mask_stat" not in hparams:
        return "not recorded"
    return f"mask_space={hparams.get('mask_space')}, mask_stat={hparams['mask_stat']} (docs/method.md §3.1)"


def micro_demo_config(**overrides: Any) -> DemoConfig:
    """The micro regime's demo (``iga demo``): M01-M04, the shipped micro base, ERM, IGA and the oracle, cues +
    teacher noise. 400 LoRA steps per method keep the three runs and their evaluation within 10 minutes on 2 cores
    (README has the measured figure and docs/demo/report.md the accuracies they reach)."""
    base: dict[str, Any] = dict(
        regime="micro",
        preset="micro",
        student="tiny",
        oracle=True,
        steps=400,
        pretrain_steps=None,
        sets_per_batch=8,
        eval_per_skeleton=25,
        skeletons=None,
    )
    base.update(overrides)
    return demo_config(**base)


def quick_demo_config(out_dir: str, **overrides: Any) -> DemoConfig:
    """A seconds-long demo for tests: the micro regime with a 3-step base, a few sets and steps."""
    base: dict[str, Any] = dict(
        out_dir=out_dir,
        regime="micro",
        preset="micro",
        oracle=True,
        skeletons=None,
        student="micro",
        pretrain_steps=3,
        steps=3,
        sets_per_batch=2,
        eval_per_skeleton=1,
        max_new_tokens=24,
        data_sizes={"train_per_skeleton": 4, "val_per_skeleton": 1, "eval_per_skeleton": 1},
    )
    base.update(overrides)
    return demo_config(**base)


def quick_standard_demo_config(out_dir: str, **overrides: Any) -> DemoConfig:
    """A seconds-long demo of the standard regime for tests: micro BPE student, tiny preset, a few steps."""
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
