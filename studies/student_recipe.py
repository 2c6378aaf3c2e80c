"""What does it take for a built-in student to learn IsoBench? One recipe = one base + one ERM fine-tune.

``python studies/student_recipe.py run NAME [options] --out runs/recipes`` pretrains a base with the given
recipe (tokenizer, corpus, size, steps), probes how well it copies from context, fine-tunes it with ERM on the
demo's four skeletons (or ``--skeletons``) and evaluates it; ``python studies/student_recipe.py table
runs/recipes`` renders every finished recipe as a Markdown table, ``... skeletons runs/recipes/NAME`` one recipe
per skeleton. docs/student-recipes.md holds the measured tables and the commands.

The copy probe: for held-out-domain problems, the premise paragraph followed by ``Recap:`` and its sentences in
reverse order; teacher-forced next-token accuracy over the recap (all tokens, and tokens holding a digit). A
base that cannot copy a number it has just read cannot be taught a chain of thought that starts by restating it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json, atomic_write_text, read_jsonl, stable_hash

DEMO_SKELETONS = ("S01_arith_chain", "S06_mp_chain", "S09_transitive_order", "S11_state_tracking")
#: Shorter, smaller-number variants of the arithmetic and state-tracking skeletons (``--easy``).
EASY_DIFFICULTY = {
    "S01_arith_chain": {"train": {"distractors": [0, 0], "num_range": [1, 10]}},
    "S11_state_tracking": {"train": {"depth": [2, 2], "width": [2, 2], "num_range": [1, 9]}},
}


def copy_probe(model: Any, tokenizer: Any, records: list[dict], limit: int = 120) -> dict[str, float]:
    """Teacher-forced accuracy of ``model`` on reverse-order recaps of the records' premise paragraphs."""
    import torch

    from iga.models.corpus import premises

    hits = total = digit_hits = digit_total = 0
    for record in records[:limit]:
        sents = premises(record)
        if len(sents) < 2:
            continue
        paragraph = " ".join(sents)
        start = len(tokenizer(paragraph)["input_ids"]) + 2  # skip " Recap:" (its first tokens are not a copy)
        ids = tokenizer(paragraph + " Recap: " + " ".join(reversed(sents)), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            pred = model(ids).logits[0, :-1].argmax(-1)
        target = ids[0, 1:]
        ok = pred[start:] == target[start:]
        is_digit = torch.tensor(
            [any(ch.isdigit() for ch in tokenizer.decode([t])) for t in target[start:].tolist()],
            dtype=torch.bool,
        )
        hits, total = hits + int(ok.sum()), total + ok.numel()
        digit_hits, digit_total = digit_hits + int(ok[is_digit].sum()), digit_total + int(is_digit.sum())
    return {"copy_accuracy": hits / max(total, 1), "copy_digit_accuracy": digit_hits / max(digit_total, 1)}


def recipe_skeletons(a: argparse.Namespace) -> list[str]:
    """The skeletons a recipe trains on: ``--skeletons`` (ids or ``all``), else the demo's four."""
    from iga.isomers.errors import ConfigError
    from iga.isomers.skeletons.registry import get_skeleton, list_skeletons

    chosen = getattr(a, "skeletons", None)
    if not chosen:
        return list(DEMO_SKELETONS)
    if chosen == "all":
        return list_skeletons()
    try:
        return [get_skeleton(n.strip()).id for n in chosen.split(",") if n.strip()]
    except ConfigError as exc:
        raise SystemExit(f"--skeletons: {exc} (or 'all')") from None


def _data(out_root: Path, a: argparse.Namespace) -> Path:
    from iga.isomers import build_suite, make_config

    spec = {
        "skeletons": recipe_skeletons(a),
        "train_per_skeleton": a.train_per_skeleton,
        "difficulty": EASY_DIFFICULTY if a.easy else {},
        "shortcut": {"enabled": not a.no_cues},
    }
    data_dir = out_root / f"data-{stable_hash(spec, 10)}"
    if not (data_dir / "manifest.json").exists():
        build_suite(make_config("small", **spec), data_dir, seed=0)
    return data_dir


def run_recipe(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from iga.config import TrainConfig
    from iga.models.corpus import build_corpus
    from iga.models.pretrain import PretrainConfig, load_base, pretrain_base
    from iga.runs.pipeline import run_training
    from iga.utils.provenance import provenance

    torch.set_num_threads(a.threads)
    out_root = Path(a.out)
    out = out_root / a.name
    data_dir = _data(out_root, a)
    t0 = time.perf_counter()
    base_dir = Path(a.reuse_base) if a.reuse_base else out / "base"
    if not (base_dir / "base.json").exists():
        corpus = build_corpus(
            seed=0, max_sum=a.max_sum, max_factor=a.max_factor, recaps=a.recaps, copy_drills=a.copy_drills
        )
        cfg = PretrainConfig(
            student=a.student,
            vocab_size=a.vocab,
            steps=a.steps,
            batch_size=a.batch,
            seq_len=a.seq_len,
            lr=a.lr,
            split_digits=a.split_digits,
        )
        pretrain_base(corpus.documents, corpus.tokenizer_texts, base_dir, cfg)
    pretrain_seconds = time.perf_counter() - t0
    model, tok = load_base(base_dir)
    records = read_jsonl(data_dir / "ood_surface.jsonl")
    probe = copy_probe(model, tok, records)
    t0 = time.perf_counter()
    tc = TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(out / "erm"),
        algorithm="erm",
        student=a.student,
        base_dir=str(base_dir),
        steps=a.ft_steps,
        sets_per_batch=4,
        lr=a.ft_lr,
        seed=0,
        lora={"r": 16, "alpha": 32},
        warmup_steps=max(1, a.ft_steps // 15),
        checkpoint_every=a.ft_steps,
        log_every=max(1, a.ft_steps // 30),
    )
    result = run_training(tc, evaluate=True, per_skeleton=a.eval_per_skeleton, progress=False)
    summary = result["eval"]["summary"]
    payload = {
        "name": a.name,
        "args": vars(a),
        "data_dir": str(data_dir),
        "base": json.loads((base_dir / "base.json").read_text()),
        **probe,
        "val_accuracy": summary.get("val_accuracy"),
        "id_accuracy": summary.get("id_accuracy"),
        "ood_accuracy": summary.get("ood_accuracy"),
        "by_skeleton": summary.get("by_skeleton") or {},
        "pretrain_seconds": round(pretrain_seconds, 1),
        "finetune_seconds": round(time.perf_counter() - t0, 1),
        "step_time_s": result["train"].get("step_time_s"),
        "provenance": provenance(),
    }
    atomic_write_json(out / "recipe.json", payload)
    return payload


def render_table(out_root: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(out_root.glob("*/recipe.json"))]
    head = (
        "| recipe | student | pretrain steps × batch × seq | digits | facts ≤ | recaps | drills | copy % | copy digits % | "
        "data | FT steps | FT lr | val % | ID % | OOD % | ID per skeleton % |\n"
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    lines = [head]
    for r in rows:
        a, cfg = r["args"], r["base"]["pretrain_config"]
        data = (
            f"{a['train_per_skeleton']}/skeleton"
            + (", easy" if a["easy"] else "")
            + (", no cues" if a["no_cues"] else "")
        )
        # The evaluation's own per-skeleton summary: ID = id_test in the training domains, as in the ID % column.
        per = r["by_skeleton"]
        per_sk = ", ".join(
            f"{s.split('_')[0]} {100 * per[s]['id_accuracy']:.0f}"
            for s in sorted(per)
            if per[s].get("id_accuracy") is not None
        )
        base_src = f"{cfg['steps']} × {cfg['batch_size']} × {cfg['seq_len']}" + (
            f" (base of {Path(a['reuse_base']).parent.name})" if a["reuse_base"] else ""
        )
        lines.append(
            f"| {r['name']} | {cfg['student']} | {base_src} | {'yes' if cfg.get('split_digits') else 'no'} | "
            + (
                "as base | as base | as base | "  # the corpus options of a reused base are its own recipe's
                if a["reuse_base"]
                else f"{a['max_sum']}, ×{a['max_factor']} | {a['recaps']} | {a.get('copy_drills', 0)} | "
            )
            + f"{100 * r['copy_accuracy']:.0f} | "
            f"{100 * r['copy_digit_accuracy']:.0f} | {data} | {a['ft_steps']} | {a['ft_lr']:g} | "
            f"{_pct(r['val_accuracy'])} | {_pct(r['id_accuracy'])} | {_pct(r['ood_accuracy'])} | {per_sk} |"
        )
    return "\n".join(lines) + "\n"


def render_skeleton_table(recipe_dir: Path) -> str:
    """Per-skeleton accuracies of one recipe, next to the majority-answer rate of its in-domain test problems."""
    from collections import Counter

    r = json.loads((recipe_dir / "recipe.json").read_text())
    train = set(_train_domains(r))
    id_records = [rec for rec in read_jsonl(Path(r["data_dir"]) / "id_test.jsonl") if rec["domain"] in train]
    lines = [
        "| skeleton | answer type | majority answer % (id_test) | val % (cues) | ID % | OOD % | n ID |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for sk, m in sorted(r["by_skeleton"].items()):
        recs = [rec for rec in id_records if rec["skeleton"] == sk]
        majority = Counter(rec["answer"] for rec in recs).most_common(1)[0][1] / len(recs) if recs else None
        kind = recs[0]["answer_type"] if recs else "?"
        lines.append(
            f"| {sk} | {kind} | {_pct(majority)} | {_pct(m.get('val_accuracy'))} | {_pct(m.get('id_accuracy'))} | "
            f"{_pct(m.get('ood_accuracy'))} | {m.get('n_id')} |"
        )
    return "\n".join(lines) + "\n"


def _train_domains(recipe: dict) -> list[str]:
    manifest = json.loads((Path(recipe["data_dir"]) / "manifest.json").read_text())
    return [d["name"] for d in manifest["domains"] if d.get("role") == "train"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python studies/student_recipe.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="pretrain a base, probe copying, fine-tune ERM, evaluate")
    run.add_argument("name")
    run.add_argument("--out", default="runs/recipes")
    run.add_argument("--student", default="small")
    run.add_argument("--vocab", type=int, default=2048)
    run.add_argument("--seq-len", type=int, default=96)
    run.add_argument("--batch", type=int, default=32)
    run.add_argument("--steps", type=int, default=400)
    run.add_argument("--lr", type=float, default=3e-3)
    run.add_argument("--split-digits", action="store_true")
    run.add_argument("--max-sum", type=int, default=40)
    run.add_argument("--max-factor", type=int, default=12)
    run.add_argument("--recaps", default="half", choices=["half", "all"])
    run.add_argument("--copy-drills", type=int, default=0, help="copy-drill documents added to the corpus")
    run.add_argument("--reuse-base", default=None, help="an existing base folder instead of pretraining one")
    run.add_argument(
        "--skeletons", default=None, help="comma-separated skeleton ids, or 'all' (default: the demo's)"
    )
    run.add_argument("--train-per-skeleton", type=int, default=60)
    run.add_argument("--easy", action="store_true", help="smaller numbers, shorter S11 (EASY_DIFFICULTY)")
    run.add_argument("--no-cues", action="store_true", help="train without shortcut cues")
    run.add_argument("--ft-steps", type=int, default=300)
    run.add_argument("--ft-lr", type=float, default=3e-3)
    run.add_argument("--eval-per-skeleton", type=int, default=5)
    run.add_argument("--threads", type=int, default=1)
    table = sub.add_parser("table", help="Markdown table of every finished recipe under a folder")
    table.add_argument("out")
    table.add_argument("--write", default=None, help="also write the table to this file")
    per_skeleton = sub.add_parser("skeletons", help="per-skeleton table of one finished recipe")
    per_skeleton.add_argument("recipe_dir")
    a = ap.parse_args(argv)
    if a.command == "skeletons":
        print(render_skeleton_table(Path(a.recipe_dir)), end="")
        return
    if a.command == "run":
        r = run_recipe(a)
        print(
            f"{r['name']}: copy {100 * r['copy_accuracy']:.0f}% (digits {100 * r['copy_digit_accuracy']:.0f}%), "
            f"val {_pct(r['val_accuracy'])} ID {_pct(r['id_accuracy'])} OOD {_pct(r['ood_accuracy'])}"
        )
    else:
        text = render_table(Path(a.out))
        if a.write:
            atomic_write_text(a.write, text)
        print(text, end="")


if __name__ == "__main__":
    main()
