"""``docs/results/summary.json``: the study of record in one file — per algorithm, mean and 95% CI over seeds of
OOD-surface accuracy, ID accuracy and LCS, and the number of seeds.

The numbers are those of ``iga collect`` on the same sweep (same reader, the same validation-based model
selection, the same Student-t intervals): this file only keeps the main comparison (no ablation groups) and the
fields a reader of the paper's claims needs, plus where they came from (sweep, command, git commit, job time).

Run: ``python studies/study_summary.py runs/shortcut --out docs/results/summary.json``.

Example (a one-job sweep written by hand):
    >>> import json, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> job = root / "jobs" / "e0"
    >>> job.mkdir(parents=True)
    >>> _ = (job / "job.json").write_text(json.dumps({"job_id": "e0", "group": "erm", "seed": 0}))
    >>> summary = {"id_accuracy": 0.5, "ood_accuracy": 0.25, "gap": 0.25, "by_family": {}}
    >>> _ = (job / "result.json").write_text(json.dumps({"eval": {"summary": summary}, "train": {}}))
    >>> _ = (job / "done").write_text("")
    >>> study_summary(root)["algorithms"]["erm"]["ood_accuracy"]
    {'mean': 0.25, 'ci95': None, 'n': 1}
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iga.sweeps.collect_aggregate import aggregate, main_groups
from iga.sweeps.sweep_cost import sweep_cost
from iga.sweeps.sweep_results import load_finished, read_json_object, select_models, selection_line

#: Per algorithm, in this order; each a {mean, ci95, n} cell over seeds (fractions, LCS as is).
FIELDS = (
    "ood_accuracy",
    "id_accuracy",
    "lcs",
    "gap",
    "val_accuracy",
    "val_nocue_accuracy",
    "cue_gain",
    "wrongcue_follow",
)


def _regime(root: Path) -> dict[str, Any]:
    """The suite preset, the shortcut setting and the student's base, from the sweep's ``sweep.json``."""
    path = root / "sweep.json"
    if not path.is_file():
        return {}
    spec = read_json_object(path).get("spec") or {}
    data = spec.get("data") or {}
    return {
        "preset": data.get("preset"),
        "shortcut": data.get("shortcut"),
        "student": spec.get("student"),
        "base": "micro skill base"
        if spec.get("micro_base") is not None
        else spec.get("base_dir") or "pretrained",
        "steps": (spec.get("train") or {}).get("steps"),
    }


def study_summary(
    sweep_dir: str | os.PathLike, *, select: str = "val", out: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The JSON-able summary of the sweep's main comparison (see the module docstring); ``out`` only names the
    file in the ``regenerate`` command."""
    from iga.utils.provenance import git_commit

    root = Path(sweep_dir)
    records, finished = load_finished(root)
    selected, _ = select_models(finished, select=select)
    agg = aggregate(selected, select=select)
    algorithms = {}
    for group in main_groups(agg.groups):
        stats = agg.groups[group]
        algorithms[group] = {
            "algorithm": stats.algorithm,
            "n_seeds": stats.n_seeds,
            "seeds": sorted(r.seed for r in stats.runs),
            **{name: stats.overall[name].to_json() for name in FIELDS},
            "oracle_gap_closed": stats.oracle_gap_closed,
            "step_time_rel_erm": stats.step_time_rel_erm,
        }
    cost = sweep_cost(finished)["total"]
    return {
        "sweep": str(root),
        "regime": _regime(root),
        "selection_rule": select,
        "model_selection": selection_line(select),
        "jobs": {"finished": len(finished), "unfinished": len(records) - len(finished)},
        "job_hours_recorded": round(cost["job_minutes"] / 60.0, 3),
        "cells": "mean ± ci95 (95% Student-t half-width over seeds; null with one seed), fractions; LCS lower is "
        "more consistent",
        "regenerate": f"python studies/study_summary.py {root} --out {out or '<file>'}"
        + ("" if select == "val" else f" --select {select}"),
        "git": git_commit(),
        "generated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithms": algorithms,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from iga.utils.io import atomic_write_json

    parser = argparse.ArgumentParser(description="Per-algorithm summary of a sweep's main comparison (JSON).")
    parser.add_argument("sweep_dir")
    parser.add_argument(
        "--out", required=True, help="the JSON file to write (e.g. docs/results/summary.json)"
    )
    parser.add_argument(
        "--select",
        default="val",
        help="model-selection rule: val (default), val_nocue, lodo or test (oracle)",
    )
    args = parser.parse_args(argv)
    summary = study_summary(args.sweep_dir, select=args.select, out=args.out)
    atomic_write_json(Path(args.out), summary)
    print(
        f"wrote {args.out}: {len(summary['algorithms'])} groups, {summary['jobs']['finished']} finished jobs"
    )
    return summary


if __name__ == "__main__":  # pragma: no cover
    main()
