"""The micro regime, measured: does ERM learn every micro skeleton, is the held-out shift crossable, does the cue bite?

Commands (each resumable: a finished run is read back, not retrained; ``--fresh`` retrains):

    python studies/micro_regime.py learnability --out runs/micro   # ERM (4 training domains) and the oracle (8)
    python studies/micro_regime.py shortcut --out runs/micro       # ERM with cues, and with cues + teacher noise
    python studies/micro_regime.py table --out runs/micro          # the Markdown tables of docs/student-recipes.md
    python studies/micro_regime.py base [--base DIR]               # the base's own skill accuracy (symbolic, ...)
    python studies/micro_regime.py train-base --set steps=2000 --name NAME  # a base variant, probed as it trains
    python studies/micro_regime.py base-table --out docs/results/micro_base  # the probed bases, one row each
    python studies/micro_regime.py shift --run RUN_DIR --out docs/results/micro_regime  # templates or words?
    python studies/micro_regime.py misses --run RUN_DIR[,RUN_DIR]  # why M01's in-domain answers were wrong

Every run uses the cached micro base (``iga pretrain --regime micro``), the ``micro`` preset (50 evaluation sets
per skeleton: 200 answers per skeleton and split) and LoRA on all linear layers; ``--steps``/``--lr``/``--rank``
set the fine-tuning budget. Intervals are Wilson 95 % intervals. ``runs/micro/micro_regime.json`` holds every
number the tables print, with the configs, versions and timings.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TRAIN_DOMAINS = ["math", "medicine", "law", "science"]
HELDOUT_DOMAINS = ["finance", "sports", "cooking", "fictional"]
SETTINGS = {
    "clean": {"enabled": False},
    "cues": {"share": 0.5},
    "cues_noise": {"share": 0.5, "noise": 0.2},
    "cues_all_noise": {"share": 1.0, "noise": 0.2},
}
SPLITS = {
    "learnability": ("id_test", "ood_surface", "ood_depth", "stress"),
    "shortcut": ("val", "val_nocue", "val_wrongcue", "id_test", "ood_surface"),
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def build_data(out: Path, setting: str, *, oracle: bool, seed: int) -> Path:
    from iga.isomers import Manifest, build_suite, make_config

    folder = out / "data" / (setting + ("_oracle" if oracle else ""))
    if (folder / "manifest.json").exists():
        return folder
    build_suite(make_config("micro", shortcut=SETTINGS[setting], oracle=oracle), folder, seed=seed)
    Manifest.load(folder)
    return folder


def train_and_eval(
    out: Path,
    name: str,
    data: Path,
    base: Path,
    args: Any,
    splits: tuple[str, ...],
    domains: list[str],
    *,
    algorithm: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict:
    """Train ``name`` (LoRA on ``base``) on ``data``'s ``domains`` and evaluate ``splits``; a finished run on the
    same base is read back. The algorithm is ``algorithm`` (default: from the name, ``erm``/``oracle`` → ERM) with
    ``options`` (default: τ = 10 for IGA)."""
    import shutil

    from iga.config import TrainConfig
    from iga.runs.folder import RunFolder
    from iga.runs.pipeline import run_training

    run_dir = out / "runs" / name
    result = RunFolder(run_dir).read_result()
    same_base = result.get("eval") and result["config"].get("base_dir") == str(base)
    if same_base and not args.fresh:  # a finished run on the same base is read back
        return result
    shutil.rmtree(run_dir, ignore_errors=True)
    if algorithm is None:
        algorithm = "erm" if name.startswith(("erm", "oracle")) else name.split(":")[0]
    if options is None:
        options = {"tau": 10.0} if algorithm == "iga" else {}
    cfg = TrainConfig(
        data_dir=str(data),
        out_dir=str(run_dir),
        algorithm=algorithm,
        algorithm_options=options,
        student="tiny",
        base_dir=str(base),
        train_domains=domains,
        steps=args.steps,
        sets_per_batch=args.sets
        if len(domains) <= 4
        else max(1, args.sets * 4 // len(domains)),  # same rows/step
        lr=args.lr,
        lr_floor=args.lr_floor,
        lora={"r": args.rank, "alpha": 2 * args.rank},
        warmup_steps=30,
        checkpoint_every=max(1, args.steps // 4),
        log_every=25,
        seed=args.seed,
    )
    return run_training(cfg, evaluate=True, progress=sys.stderr.isatty(), eval_splits=splits, per_skeleton=50)


def per_group(run_dir: Path, data_dirs: list[Path]) -> dict[str, Any]:
    """Accuracy per (split, skeleton) on ID/held-out domains, and wrong-cue following per training domain."""
    from collections import defaultdict

    from iga.isomers.answers import answers_match
    from iga.utils.io import read_jsonl

    completions = {c["id"]: c for c in read_jsonl(run_dir / "completions.jsonl")}
    records: dict[str, dict] = {}
    for d in data_dirs:
        for split in ("val", "id_test", "ood_surface", "ood_depth", "stress"):
            path = d / f"{split}.jsonl"
            if path.exists():
                for r in read_jsonl(path):
                    records.setdefault(r["id"], r)
    acc: dict[str, list[int]] = defaultdict(list)
    follow: dict[str, list[int]] = defaultdict(list)
    for cid, c in completions.items():
        base_id, _, derived = cid.partition(":")
        r = records.get(base_id)
        if r is None:
            continue
        split = f"val_{derived}" if derived else r["split"]
        role = (
            "id"
            if r["domain"] in TRAIN_DOMAINS
            else "heldout"
            if r["domain"] in HELDOUT_DOMAINS
            else "stress"
        )
        if split in ("id_test", "val", "val_nocue", "val_wrongcue") and role != "id":
            continue
        if split == "ood_surface" and role != "heldout":
            continue
        acc[f"{split}|{r['skeleton']}"].append(int(c["strict"]))
        acc[f"{split}|all"].append(int(c["strict"]))
    # wrong-cue following needs the cue values: re-derived exactly as the evaluator derived them
    from iga.isomers.answers import extract_answer
    from iga.isomers.shortcuts import with_wrong_cue

    for cid, c in completions.items():
        base_id, _, derived = cid.partition(":")
        if derived != "wrongcue" or base_id not in records:
            continue
        r = with_wrong_cue(records[base_id])
        got = extract_answer(c["completion"], r["answer_type"], label_space=r.get("label_space")).value
        hit = got is not None and answers_match(
            got, r["shortcut"]["value"], r["answer_type"], label_space=r.get("label_space")
        )
        follow[r["domain"]].append(int(hit))
        follow[r["skeleton"]].append(int(hit))
        follow["all"].append(int(hit))

    def rate(xs: list[int]) -> dict[str, Any]:
        lo, hi = wilson(sum(xs), len(xs))
        return {"acc": sum(xs) / len(xs) if xs else None, "n": len(xs), "lo": lo, "hi": hi}

    return {
        "accuracy": {k: rate(v) for k, v in sorted(acc.items())},
        "wrong_cue_follow": {k: rate(v) for k, v in follow.items()},
    }


def run(kind: str, args: Any) -> None:
    import torch

    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_base_cache import ensure_micro_base

    torch.set_flush_denormal(True)
    out = Path(args.out)
    if args.base:
        base, built = Path(args.base), False
    else:
        base, built = ensure_micro_base(MicroBaseConfig(seed=args.seed))
    print(f"base: {base} ({'built' if built else 'cached'})", flush=True)
    summary_path = out / "micro_regime.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
    if kind == "learnability":
        plan = [("erm:clean", "clean", False), ("oracle:clean", "clean", True)]
    else:
        plan = [("erm:cues", "cues", False), ("erm:cues_noise", "cues_noise", False)]
        plan += [("erm:cues_all_noise", "cues_all_noise", False)] if args.all_noise else []
    if args.only:
        plan = [p for p in plan if p[0] in args.only.split(",")]
    for name, setting, oracle in plan:
        data = build_data(out, setting, oracle=oracle, seed=args.seed)
        domains = TRAIN_DOMAINS + (HELDOUT_DOMAINS if oracle else [])
        t0 = time.perf_counter()
        result = train_and_eval(out, name, data, base, args, SPLITS[kind], domains)
        groups = per_group(out / "runs" / name, [data])
        summary["runs"][name] = {
            "setting": setting,
            "shortcut": SETTINGS[setting],
            "train_domains": domains,
            "train_seconds": result["train"]["train_seconds"],
            "step_time_s": result["train"]["step_time_s"],
            "steps": args.steps,
            "lr": args.lr,
            "lr_floor": args.lr_floor,
            "rank": args.rank,
            "sets_per_batch": args.sets,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "eval_seconds": result["eval"].get("generation_seconds"),
            **groups,
        }
        summary["base"] = {"dir": str(base), **json.loads((base / "base.json").read_text())}
        from iga.utils.io import atomic_write_json
        from iga.utils.provenance import provenance

        summary["provenance"] = provenance()
        atomic_write_json(summary_path, summary)
        print(f"{name}: trained {result['train']['train_seconds']} s", flush=True)
    print(render_tables(summary))


def _cell(stat: dict | None) -> str:
    if not stat or stat.get("acc") is None:
        return "–"
    return f"{100 * stat['acc']:.1f} [{100 * stat['lo']:.0f}, {100 * stat['hi']:.0f}]"


def render_tables(summary: dict) -> str:
    lines = []
    runs = summary["runs"]
    skeletons = ["M01_arith_walk", "M02_mp_forward", "M03_order", "M04_state", "all"]
    for name, r in runs.items():
        lines += [
            f"**{name}** ({r['steps']} LoRA steps, lr {r['lr']}, r {r['rank']}; trained {r['train_seconds']:.0f} s, "
            f"{r['step_time_s']} s/step; cues {json.dumps(r['shortcut'])})",
            "",
            "| split | " + " | ".join(skeletons) + " |",
            "| --- |" + " ---: |" * len(skeletons),
        ]
        for split in ("id_test", "ood_surface", "ood_depth", "stress", "val", "val_nocue", "val_wrongcue"):
            cells = [r["accuracy"].get(f"{split}|{sk}") for sk in skeletons]
            if any(cells):
                lines.append(f"| {split} | " + " | ".join(_cell(c) for c in cells) + " |")
        follow = r.get("wrong_cue_follow") or {}
        if follow:
            lines += [
                "",
                "wrong cue followed (val, every training-domain problem shown a wrong cue): "
                + ", ".join(f"{d} {_cell(follow.get(d))}" for d in [*TRAIN_DOMAINS, "all"] if d in follow),
                "",
                "by skeleton: "
                + ", ".join(f"{k} {_cell(follow.get(k))}" for k in skeletons[:-1] if k in follow),
            ]
        lines.append("")
    return "\n".join(lines)


def skill_records(rows: Any, domain: Any, n: int) -> list[dict]:
    """``n`` fresh problems per micro skeleton rendered in ``domain``, from a stream no base trains on."""
    from iga.isomers.render import render
    from iga.isomers.rng import HashRng

    recs = []
    for sk in rows.skeletons:
        for j in range(n):
            rng = HashRng(999, sk.id, j)  # the base's own rows use the "micro-base" stream
            params, difficulty = sk.sample(rng, rows.knobs[sk.id])
            inst = sk.instance_from(params, {"regime": "train", **difficulty})
            r = render(inst, domain, rng.child("render"))
            recs.append(
                {
                    "id": f"{sk.id}-{j}",
                    "question": r.question,
                    "answer": r.answer,
                    "answer_type": inst.answer_type,
                    "label_space": r.label_space,
                    "skeleton": sk.id,
                }
            )
    return recs


def skill_accuracy(model: Any, tok: Any, recs: list[dict]) -> dict[str, float]:
    """Greedy strict accuracy per skeleton."""
    from iga.evaluation.generation import generate_completions
    from iga.evaluation.scores import score_record

    comps = generate_completions(model, tok, recs, max_new_tokens=60, batch_size=100, progress=False)
    hits: dict[str, list[int]] = {}
    for c, r in zip(comps, recs, strict=True):
        hits.setdefault(r["skeleton"], []).append(int(score_record(c, r).correct("strict")))
    return {k: sum(v) / len(v) for k, v in hits.items()}


def base_skill(base_dir: str | None, domains: list[str], n: int, seed: int) -> dict[str, dict[str, float]]:
    """Greedy accuracy of the base itself on ``n`` fresh problems per micro skeleton in each domain."""
    import torch

    from iga.isomers.domains import load_domains
    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_base_cache import micro_base_path
    from iga.models.micro_rows import MicroRows
    from iga.models.pretrain import load_base

    torch.set_flush_denormal(True)
    path = Path(base_dir) if base_dir else micro_base_path(MicroBaseConfig(seed=seed))
    model, tok = load_base(path)
    loaded = load_domains()
    rows = MicroRows(MicroBaseConfig(), tok, loaded)
    out: dict[str, dict[str, float]] = {}
    for dom in domains:
        out[dom] = skill_accuracy(model, tok, skill_records(rows, loaded[dom], n))
        print(dom, {k[:3]: round(v, 2) for k, v in out[dom].items()}, f"(n = {n} per skeleton)", flush=True)
    return out


def probe_records(rows: Any, n: int) -> dict[str, list[dict]]:
    """The base's probe problems in the neutral wording: with its letters P..Z, and with every domain's words in
    the slots (the wording a LoRA run must carry the skill to)."""
    from iga.models.micro_rows import with_pooled_words

    symbolic = rows.domains["symbolic"]
    return {
        "letters": skill_records(rows, symbolic, n),
        "words": skill_records(rows, with_pooled_words(symbolic, rows.narrative_domains), n),
    }


def _short(acc: dict[str, float]) -> dict[str, float]:
    return {k[:3]: round(v, 2) for k, v in acc.items()}


def _parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` for a ``MicroBaseConfig`` field; the value is read as a Python literal where it is one."""
    import ast
    from dataclasses import fields

    from iga.models.micro_base import MicroBaseConfig

    key, sep, value = text.partition("=")
    names = [f.name for f in fields(MicroBaseConfig)]
    if not sep or key not in names:
        raise SystemExit(f"--set {text!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def train_base_probed(args: Any) -> None:
    """Train a base with ``--set`` overrides, its neutral-wording skill accuracy (letters, and every domain's words:
    ``probe_records``) measured every ``--probe-every`` steps.

    Writes ``OUT/base-probe/NAME/`` (the base) and ``probe.json`` (config, accuracy curve with training seconds,
    final accuracy on ``--n`` problems per skeleton, provenance)."""
    import shlex

    import torch

    from iga.isomers.domains import load_domains
    from iga.models.micro_base import MicroBaseConfig, parent_config, polish_micro_base, train_micro_base
    from iga.models.micro_base_cache import ensure_micro_base
    from iga.models.micro_rows import MicroRows
    from iga.utils.io import atomic_write_json
    from iga.utils.provenance import provenance

    torch.set_flush_denormal(True)
    cfg = MicroBaseConfig(**dict(_parse_override(s) for s in args.set))
    folder = Path(args.out) / "base-probe" / args.name
    loaded = load_domains()
    curve: list[dict] = []
    clock = {"train": 0.0, "t": time.perf_counter()}
    state: dict[str, Any] = {}

    total = (
        cfg.polish_steps or cfg.steps
    )  # a polished base: the polish's own steps, from its parent's weights

    def probe(step: int, model: Any, tok: Any) -> None:
        if step % args.probe_every and step != total:
            return
        clock["train"] += time.perf_counter() - clock["t"]
        if "recs" not in state:
            state["recs"] = probe_records(MicroRows(cfg, tok, loaded), args.probe_n)
        model.eval()
        acc = {name: skill_accuracy(model, tok, recs) for name, recs in state["recs"].items()}
        model.train()
        curve.append(
            {"step": step, "train_seconds": round(clock["train"], 1), **acc["letters"], "words": acc["words"]}
        )
        print(step, f"{clock['train']:.0f}s", *(f"{name} {_short(a)}" for name, a in acc.items()), flush=True)
        clock["t"] = time.perf_counter()

    if cfg.polish_steps:
        parent, _ = ensure_micro_base(parent_config(cfg))  # the cached (or shipped) base below the polish
        polish_micro_base(cfg, parent, folder, on_step=probe)
    else:
        train_micro_base(cfg, folder, on_step=probe)
    from iga.models.pretrain import load_base

    model, tok = load_base(folder)
    final = {
        name: skill_accuracy(model, tok, recs)
        for name, recs in probe_records(MicroRows(cfg, tok, loaded), args.n).items()
    }
    print("final", *(f"{name} {_short(a)}" for name, a in final.items()), f"(n = {args.n})", flush=True)
    from dataclasses import asdict

    atomic_write_json(
        folder / "probe.json",
        {
            "config": asdict(cfg),
            "curve": curve,
            "final": final["letters"],
            "final_words": final["words"],
            "final_n": args.n,
            "train_seconds": round(clock["train"], 1),
            "torch_threads": torch.get_num_threads(),
            "command": "python studies/micro_regime.py train-base "
            + " ".join(f"--set {shlex.quote(s)}" for s in args.set),
            "provenance": provenance(),
        },
    )


#: MicroBaseConfig fields added after some committed probe files were written, with the value those runs had.
FIELDS_BEFORE_THEY_EXISTED = {
    "skill_words": "skill_domain",
    "late_skill_words": None,
    "drill_share": 0.0,
    "late_drill_share": None,
    "drill_reverse_share": 0.0,
    "fact_drill_share": 0.0,
    "late_fact_drill_share": None,
    "fact_drill_rows": "any",
    "polish_steps": 0,
}


def base_table(folder: Path) -> str:
    """One Markdown row per ``probe.json`` under ``folder``: the config's non-default fields, the final accuracy
    with letters and (where probed) with every domain's words, the accuracy after each probe (letters), and the
    training seconds."""
    from dataclasses import asdict

    from iga.models.micro_base import MicroBaseConfig

    default = json.loads(json.dumps(asdict(MicroBaseConfig())))  # tuples as the JSON files hold them: lists
    lines = [
        "| run | config (fields that differ from `MicroBaseConfig()`) | train s | threads | M01 | M02 | M03 | M04 "
        "| words M01/M02/M03/M04 | curve (step: M01/M02/M03/M04) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for path in sorted(folder.glob("*/probe.json")) + sorted(folder.glob("*.json")):
        p = json.loads(path.read_text())
        config = {**FIELDS_BEFORE_THEY_EXISTED, **p["config"]}  # a file older than a field ran without it
        changed = ", ".join(
            f"{k} {tuple(v) if isinstance(v, list) else v}"
            for k, v in config.items()
            if v != default.get(k) and k != "seed"
        )
        keys = ("M01_arith_walk", "M02_mp_forward", "M03_order", "M04_state")
        final = [p["final"].get(k) for k in keys]
        words = "/".join(f"{p['final_words'][k]:.2f}" for k in keys) if "final_words" in p else "–"
        curve = "; ".join(
            f"{c['step']}: " + "/".join(f"{c[k]:.2f}" for k in c if k.startswith("M"))
            for c in p["curve"][::2]
        )
        lines.append(
            f"| {path.parent.name if path.name == 'probe.json' else path.stem} | {changed or 'default'} "
            # a polished base's probe clock is its polish's only (its parent was trained, or shipped, before)
            f"| {p['train_seconds']:.0f}{' (polish)' if p['config'].get('polish_steps') else ''} "
            f"| {p['torch_threads']} | " + " | ".join(f"{x:.2f}" for x in final) + f" | {words} | {curve} |"
        )
    return "\n".join(lines)


#: (training domain, held-out domain) pairs of the ``shift`` measurement: each held-out domain beside one training one.
SHIFT_PAIRS = tuple(zip(TRAIN_DOMAINS, HELDOUT_DOMAINS, strict=True))
SHIFT_CONDITIONS = (
    "train",
    "train templates + held-out words",
    "held-out templates + train words",
    "held-out",
)


def hybrid_domain(templates: Any, words: Any) -> Any:
    """``templates``' sentences with ``words``' word pools and lexicon (the pool names are shared by every shipped
    domain): the held-out shift cut into its two halves."""
    from dataclasses import replace

    sections = {
        sk: replace(section, words=words.sections[sk].words) if sk in words.sections else section
        for sk, section in templates.sections.items()
    }
    return replace(
        templates,
        name=f"{templates.name}+{words.name}-words",
        lexicon={**templates.lexicon, **words.lexicon},
        sections=sections,
    )


def shift(args: Any) -> None:
    """Which half of the held-out shift ERM fails on: the held-out templates or the held-out words. A trained run's
    model answers the same fresh problems (``--n`` per skeleton) in four renderings per (training, held-out) pair:
    the training domain, its templates with the held-out domain's words, the held-out templates with the training
    words, and the held-out domain. Writes ``OUT/shift.json`` and prints the table (mean over the four pairs)."""
    import torch

    from iga.isomers.domains import load_domains
    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_rows import MicroRows
    from iga.runs.evaluate import load_run

    torch.set_flush_denormal(True)
    if not args.run:
        raise SystemExit("shift: give --run DIR (a finished run folder with an adapter)")
    _, model, tok = load_run(args.run)
    loaded = load_domains()
    rows = MicroRows(MicroBaseConfig(), tok, loaded)
    acc: dict[str, dict[str, dict[str, float]]] = {}
    for train_name, held_name in SHIFT_PAIRS:
        train, held = loaded[train_name], loaded[held_name]
        renderings = dict(
            zip(
                SHIFT_CONDITIONS,
                (train, hybrid_domain(train, held), hybrid_domain(held, train), held),
                strict=True,
            )
        )
        pair = f"{train_name}/{held_name}"
        acc[pair] = {
            cond: skill_accuracy(model, tok, skill_records(rows, dom, args.n))
            for cond, dom in renderings.items()
        }
        print(pair, {c: _short(a) for c, a in acc[pair].items()}, flush=True)
    skeletons = sorted(next(iter(acc.values()))["train"])
    mean = {
        cond: {sk: sum(acc[p][cond][sk] for p in acc) / len(acc) for sk in skeletons}
        for cond in SHIFT_CONDITIONS
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python studies/micro_regime.py " + " ".join(sys.argv[1:]),
        "run": str(args.run),
        "n_per_skeleton": args.n,
        "pairs": acc,
        "mean": mean,
        "note": "fresh problems (stream 999, as the base probes), greedy, strict answers; no cues",
    }
    from iga.utils.io import atomic_write_json
    from iga.utils.provenance import provenance

    atomic_write_json(out / "shift.json", {**payload, "provenance": provenance()})
    print(shift_table(payload))


def shift_table(payload: dict[str, Any]) -> str:
    mean = payload["mean"]
    skeletons = sorted(next(iter(mean.values())))
    n = payload["n_per_skeleton"] * len(payload["pairs"])
    lines = [
        f"Accuracy (%) of `{payload['run']}` on the same fresh problems in four renderings, mean over the pairs "
        f"{', '.join(payload['pairs'])} (n = {n} per cell).",
        "",
        "| rendering | " + " | ".join(s[:3] for s in skeletons) + " |",
        "|---|" + "---:|" * len(skeletons),
    ]
    for cond, row in mean.items():
        lines.append(f"| {cond} | " + " | ".join(f"{100 * row[s]:.1f}" for s in skeletons) + " |")
    return "\n".join(lines)


_STEP = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)")


def arith_miss_kind(completion: str, trace: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Why an M01 (``arith_walk``) answer was wrong: ``("wrong sum", "a op b = c")`` for the first step whose
    arithmetic is false, else ``("chain length", None)`` when the number of steps differs from the gold trace,
    else ``("copy", None)`` (right sums, a wrong operand copied from the question).

    >>> arith_miss_kind("step 1 : 21 + 7 = 27. the answer is 27.", [{"op": "add", "args": [21, 7], "out": 28}])
    ('wrong sum', '21 + 7 = 27')
    """
    steps = _STEP.findall(completion)
    for a, op, b, c in steps:
        if (int(a) + int(b) if op == "+" else int(a) - int(b)) != int(c):
            return "wrong sum", f"{a} {op} {b} = {c}"
    return ("chain length", None) if len(steps) != len(trace) else ("copy", None)


def misses(args: Any) -> None:
    """M01's in-domain misses of each run folder in ``--run`` (comma-separated), by kind, with the false sums
    that recur most (a fact wrong in all four training domains' renderings of one problem counts 4)."""
    from collections import Counter

    from iga.utils.io import read_jsonl

    if not args.run:
        raise SystemExit("misses: give --run DIR[,DIR...] (finished run folders with completions.jsonl)")
    for run_dir in map(Path, args.run.split(",")):
        data = Path(json.loads((run_dir / "config.json").read_text())["data_dir"])
        records = {r["id"]: r for r in read_jsonl(data / "id_test.jsonl")}
        kinds: Counter[str] = Counter()
        sums: Counter[str] = Counter()
        answered = 0
        for c in read_jsonl(run_dir / "completions.jsonl"):
            r = records.get(c["id"])
            if r is None or r["skeleton"] != "M01_arith_walk" or r["domain"] not in TRAIN_DOMAINS:
                continue
            answered += 1
            if not c["strict"]:
                kind, fact = arith_miss_kind(c["completion"], r["canonical_trace"])
                kinds[kind] += 1
                sums.update([fact] if fact else [])
        pool = _pool_fact_counts(data / "train.jsonl")
        # (first operand, occurrences of the fact in the training pool) of every false sum
        pairs = sorted((_fact_key(f)[0], pool.get(_fact_key(f), 0)) for f in sums.elements())
        low = statistics.median(n for (a, _, _), n in pool.items() if a < 20)
        high = statistics.median(n for (a, _, _), n in pool.items() if a >= 20)
        print(
            f"{run_dir}: M01 in-domain misses {sum(kinds.values())} of {answered}: "
            + ", ".join(f"{k} {v}" for k, v in kinds.most_common())
            + "; most frequent false sums: "
            + ", ".join(f"{f} ×{n}" for f, n in sums.most_common(5))
            + (
                "; (first operand, the fact's occurrences in the training pool) of each false sum: "
                + " ".join(f"({a}, {n})" for a, n in pairs)
            )
            + f"; pool median occurrences of a fact with first operand < 20: {low}, >= 20: {high}"
        )


def _fact_key(fact: str) -> tuple[int, str, int]:
    a, op, b = fact.split()[:3]
    return int(a), "add" if op == "+" else "sub", int(b)


def _pool_fact_counts(train_path: Path) -> dict[tuple[int, str, int], int]:
    """How often each ``a ± b`` step occurs in the M01 problems of a training file (each problem once, not once
    per domain rendering)."""
    from collections import Counter

    from iga.utils.io import read_jsonl

    counts: Counter[tuple[int, str, int]] = Counter()
    problems = set()
    for r in read_jsonl(train_path):
        if r["skeleton"] == "M01_arith_walk" and r["instance_id"] not in problems:
            problems.add(r["instance_id"])
            counts.update((t["args"][0], t["op"], t["args"][1]) for t in r["canonical_trace"])
    return dict(counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=["learnability", "shortcut", "table", "base", "train-base", "base-table", "shift", "misses"],
    )
    parser.add_argument(
        "--base", default=None, help="a base folder (default: the cached default base, trained if missing)"
    )
    parser.add_argument("--domains", default="symbolic,math,sports", help="base: domains to evaluate in")
    parser.add_argument("--n", type=int, default=100, help="base: problems per skeleton and domain")
    parser.add_argument("--out", default="runs/micro")
    parser.add_argument("--set", action="append", default=[], help="train-base: a MicroBaseConfig KEY=VALUE")
    parser.add_argument("--name", default="probe", help="train-base: the run's folder name")
    parser.add_argument("--probe-every", type=int, default=300, help="train-base: steps between probes")
    parser.add_argument("--probe-n", type=int, default=40, help="train-base: problems per skeleton per probe")
    parser.add_argument("--steps", type=int, default=1100, help="LoRA steps (1 100: ~280 s on 2 cores)")
    parser.add_argument("--sets", type=int, default=8, help="isomer sets per step (x 4 or 8 domains = rows)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lr-floor", type=float, default=0.1, help="the cosine's last LR as a share of --lr")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all-noise", action="store_true", help="shortcut: also cues on every rendering + noise"
    )
    parser.add_argument("--only", default="", help="comma-separated run names, e.g. erm:clean")
    parser.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    parser.add_argument(
        "--run",
        default=None,
        help="shift: the run folder whose model answers; misses: run folders, comma-separated",
    )
    args = parser.parse_args(argv)
    if args.command == "base-table":
        print(base_table(Path(args.out)))
    elif args.command == "train-base":
        train_base_probed(args)
    elif args.command == "shift":
        shift(args)
    elif args.command == "misses":
        misses(args)
    elif args.command == "base":
        base_skill(args.base, args.domains.split(","), args.n, args.seed)
    elif args.command == "table":
        print(render_tables(json.loads((Path(args.out) / "micro_regime.json").read_text())))
    else:
        run(args.command, args)


if __name__ == "__main__":
    main()
