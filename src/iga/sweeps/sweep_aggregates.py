"""Aggregation over seeds behind ``iga plot``'s figures: accuracy table, LCS per layer, ablation series and mean
training curves of a sweep's finished jobs (the figures themselves are drawn by :mod:`iga.sweeps.sweep_plots`).

Runs come from :mod:`iga.sweeps.sweep_results` (reader, model selection, mean ± 95% CI); nothing here imports
matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iga.sweeps.sweep_results import (
    UNKNOWN,
    JobRecord,
    MeanCI,
    ablation_sort_key,
    by_group,
    cue_gain,
    finite,
    group_order,
    mean_ci,
    shared_hparam,
)
from iga.utils.io import InputError

#: (summary key, axis label) of the accuracies shown; all are strict-extraction accuracies in [0, 1].
ACCURACY_METRICS: tuple[tuple[str, str], ...] = (
    ("id_accuracy", "ID"),
    ("ood_accuracy", "OOD-surface"),
    ("ood_depth_accuracy", "OOD-depth"),
)


@dataclass(frozen=True)
class Curve:
    """Mean over seeds at the steps every seed logged, with the per-step min and max (the shaded band)."""

    steps: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


def mean_curve(logs: Sequence[Sequence[Mapping[str, Any]]], key: str) -> Curve:
    """Average ``key`` over the logs of several seeds at the steps all of them logged.

    Seeds without any finite ``key`` are left out (``n`` counts the rest); a step logged twice (a resumed run)
    keeps its last row. Steps missing from any remaining seed are dropped so every point is a mean over ``n``.

    >>> c = mean_curve([[{"step": 1, "loss": 3}, {"step": 2, "loss": 1}], [{"step": 2, "loss": 3}]], "loss")
    >>> c.steps, c.mean, c.low, c.high, c.n
    ([2], [2.0], [1.0], [3.0], 2)
    """
    per_seed: list[dict[int, float]] = []
    for rows in logs:
        points: dict[int, float] = {}
        for row in rows:
            value, step = finite(row.get(key)), row.get("step")
            if value is not None and isinstance(step, int) and not isinstance(step, bool):
                points[step] = value
        if points:
            per_seed.append(points)
    if not per_seed:
        return Curve([], [], [], [], 0)
    shared = sorted(set.intersection(*(set(p) for p in per_seed)))
    columns = [[p[s] for p in per_seed] for s in shared]
    return Curve(
        steps=shared,
        mean=[sum(c) / len(c) for c in columns],
        low=[min(c) for c in columns],
        high=[max(c) for c in columns],
        n=len(per_seed),
    )


def main_runs(runs: Iterable[JobRecord]) -> list[JobRecord]:
    return [r for r in runs if r.ablation is None]


def accuracies(runs: Iterable[JobRecord], keys: Iterable[str]) -> dict[str, MeanCI]:
    """``{key: MeanCI}`` over ``runs`` of the ``eval.summary`` accuracies named by ``keys``."""
    runs = list(runs)
    return {key: mean_ci(r.metric("eval", "summary", key) for r in runs) for key in keys}


def accuracy_table(runs: Iterable[JobRecord]) -> dict[str, dict[str, MeanCI]]:
    """``{group: {metric: MeanCI}}`` of the main comparison (runs without ablation)."""
    keys = [key for key, _ in ACCURACY_METRICS]
    return {group: accuracies(members, keys) for group, members in by_group(main_runs(runs)).items()}


def lcs_per_layer(runs: Iterable[JobRecord]) -> tuple[dict[str, dict[int, MeanCI]], float | None]:
    """LCS per layer and group (main comparison), and the permutation baseline averaged over those runs."""
    table: dict[str, dict[int, MeanCI]] = {}
    baseline: list[float | None] = []
    for group, members in by_group(main_runs(runs)).items():
        values: dict[int, list[float | None]] = {}
        for run in members:
            per_layer = run.lcs.get("per_layer") or {}
            for layer in per_layer:
                try:
                    index = int(layer)
                except ValueError:
                    raise InputError(
                        f"layer key {layer!r} is not an integer",
                        file=run.result_path,
                        field="eval.lcs.per_layer",
                    ) from None
                values.setdefault(index, []).append(run.metric("eval", "lcs", "per_layer", layer))
            if per_layer:
                baseline.append(run.metric("eval", "lcs", "permutation_mean"))
        cells = {layer: mean_ci(values[layer]) for layer in sorted(values)}
        cells = {layer: c for layer, c in cells.items() if c.n}
        if cells:
            table[group] = cells
    return table, mean_ci(baseline).mean


def format_value(value: Any) -> str:
    """Tick label of an ablation value: ``3.0`` → ``"3"``, ``None`` → ``"none"``."""
    if value is None:
        return "none"
    if finite(value) is not None:
        return f"{float(value):g}"
    return str(value)


@dataclass(frozen=True)
class AblationPoint:
    value: Any
    label: str
    groups: tuple[str, ...]
    metrics: dict[str, MeanCI]
    n_runs: int
    baseline: bool = False  # the main-comparison group at its own value of the ablated option


def ablation_series(runs: Iterable[JobRecord]) -> dict[str, list[AblationPoint]]:
    """Per ablation name, one point per value (sorted by :func:`ablation_sort_key`) with ID / OOD accuracy, and,
    where the jobs evaluated ``val_nocue``, the cue-free validation accuracy and the cue gain (paired per run).

    The main-comparison baseline joins the series when its value is known: the group before the ``:`` of the
    ablation groups (``iga:tau=3`` → ``iga``), at ``hparams[name]`` of its runs when all agree; it is left out
    when that value is already an ablation point (the same setting) or unknown.
    """
    runs = list(runs)
    groups = by_group(runs)
    points: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.ablation is None:
            continue
        name, value = run.ablation["name"], run.ablation.get("value")
        entry = points.setdefault(name, {}).setdefault(format_value(value), {"value": value, "runs": []})
        entry["runs"].append(run)
    out: dict[str, list[AblationPoint]] = {}
    for name in sorted(points):
        entries = points[name]
        bases = {r.group.split(":", 1)[0] for e in entries.values() for r in e["runs"]}
        for base in sorted(bases):
            members = [r for r in groups.get(base, []) if r.ablation is None]
            value = shared_hparam(members, name)
            if value is not UNKNOWN and format_value(value) not in entries:
                entries[format_value(value)] = {"value": value, "runs": members, "baseline": True}
        series = []
        for label, entry in sorted(entries.items(), key=lambda kv: ablation_sort_key(kv[1]["value"])):
            members = entry["runs"]
            series.append(
                AblationPoint(
                    value=entry["value"],
                    label=label,
                    groups=tuple(group_order(r.group for r in members)),
                    metrics={
                        **accuracies(members, ("ood_accuracy", "id_accuracy", "val_nocue_accuracy")),
                        "cue_gain": mean_ci(cue_gain(r) for r in members),
                    },
                    n_runs=len(members),
                    baseline=entry.get("baseline", False),
                )
            )
        out[name] = series
    return out
