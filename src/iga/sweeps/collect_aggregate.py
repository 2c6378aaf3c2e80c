"""The statistics behind ``iga collect`` (:mod:`iga.sweeps.collect`): per-group mean ± 95% CI of every metric
over the selected runs, the ERM-relative columns (oracle gap closed, step time ×ERM), the group and ablation row
order, and the machine-readable forms (CSV rows, ``summary.json``). Nothing here renders text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iga.sweeps.sweep_results import (
    ERM,
    ORACLE,
    SELECTION_METRICS,
    UNKNOWN,
    JobRecord,
    MeanCI,
    ablation_sort_key,
    by_group,
    cue_gain,
    group_order,
    mean_ci,
    shared_hparam,
)

#: ERM→oracle share is left out ("–") when oracle and ERM OOD accuracies differ by at most this (absolute).
MIN_ORACLE_GAP = 0.005
#: Per-family metrics (``eval.summary.by_family[fam][metric]``) and their table titles.
FAMILY_METRICS = {
    "ood_accuracy": "OOD-surface accuracy by family (%)",
    "id_accuracy": "ID accuracy by family (%)",
    "gap": "ID–OOD gap by family (points)",
}


@dataclass
class GroupStats:
    """Everything the tables show about one group (one row)."""

    group: str
    runs: list[JobRecord]
    ablation: dict[str, Any] | None
    overall: dict[str, MeanCI]
    by_family: dict[str, dict[str, MeanCI]]
    step_time_s: MeanCI
    step_time_rel_erm: float | None = None
    oracle_gap_closed: float | None = None

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def algorithm(self) -> str | None:
        return self.runs[0].algorithm if self.runs else None


@dataclass
class Aggregate:
    groups: dict[str, GroupStats]
    families: list[str]
    #: Why the ERM→oracle column is empty ("" when it is filled).
    oracle_note: str
    #: The validation metric shown in the tables' "Val" column: the one model selection used.
    val_metric: str = "val_accuracy"
    #: Sets of main-comparison groups whose runs evaluated identically, each with its note (:func:`identical_groups`).
    identical_notes: dict[tuple[str, ...], str] = field(default_factory=dict)


def _group_stats(group: str, runs: list[JobRecord]) -> GroupStats:
    families = sorted({fam for r in runs for fam in (r.summary.get("by_family") or {})})
    return GroupStats(
        group=group,
        runs=runs,
        ablation=runs[0].ablation,
        overall={
            "val_accuracy": mean_ci(r.metric("eval", "summary", "val_accuracy") for r in runs),
            "val_nocue_accuracy": mean_ci(r.metric("eval", "summary", "val_nocue_accuracy") for r in runs),
            # paired per run: what the cues add to validation accuracy, on the same problems
            "cue_gain": mean_ci(cue_gain(r) for r in runs),
            "cue_follow": mean_ci(r.metric("eval", "summary", "cue_follow") for r in runs),
            "cue_follow_nocue": mean_ci(r.metric("eval", "summary", "cue_follow_nocue") for r in runs),
            "wrongcue_follow": mean_ci(r.metric("eval", "summary", "wrongcue_follow") for r in runs),
            "id_accuracy": mean_ci(r.metric("eval", "summary", "id_accuracy") for r in runs),
            "ood_accuracy": mean_ci(r.metric("eval", "summary", "ood_accuracy") for r in runs),
            "gap": mean_ci(r.metric("eval", "summary", "gap") for r in runs),
            "lcs": mean_ci(r.metric("eval", "lcs", "canonical") for r in runs),
        },
        by_family={
            fam: {
                m: mean_ci(r.metric("eval", "summary", "by_family", fam, m) for r in runs)
                for m in FAMILY_METRICS
            }
            for fam in families
        },
        step_time_s=mean_ci(r.metric("train", "step_time_s") for r in runs),
    )


def _oracle_share(groups: Mapping[str, GroupStats]) -> tuple[float | None, float | None, str]:
    """(ERM OOD mean, oracle − ERM denominator, note); the denominator is None when the share is undefined."""
    missing = [name for name in (ERM, ORACLE) if name not in groups]
    if missing:
        names = " and ".join(f"'{m}'" for m in missing)
        return None, None, f"ERM→oracle gap closed: – because the sweep has no group named {names}."
    erm = groups[ERM].overall["ood_accuracy"].mean
    oracle = groups[ORACLE].overall["ood_accuracy"].mean
    if erm is None or oracle is None:
        return None, None, "ERM→oracle gap closed: – because erm or oracle has no OOD-surface accuracy."
    denominator = oracle - erm
    if denominator <= MIN_ORACLE_GAP:
        return (
            None,
            None,
            (
                f"ERM→oracle gap closed: – because the oracle's OOD-surface accuracy ({100 * oracle:.1f}%) is not "
                f"more than {100 * MIN_ORACLE_GAP:.1f} points above ERM's ({100 * erm:.1f}%): there is no gap to "
                "close (or one too small to be more than noise)."
            ),
        )
    return erm, denominator, ""


#: Two LCS values are "the same" within this (the tables print three decimals). The LCS is read from hidden
#: states, so two runs that give the same answers can still differ in its last digits by float rounding.
LCS_TOLERANCE = 5e-4


def _lcs_close(a: list[float | None], b: list[float | None]) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and abs(x - y) <= LCS_TOLERANCE)
        for x, y in zip(a, b, strict=True)
    )


def identical_groups(groups: Mapping[str, GroupStats]) -> dict[tuple[str, ...], str]:
    """The sets of main-comparison groups whose runs gave the same evaluation on every seed: the same summary
    (every accuracy, rate and breakdown, exactly: they count answers) and the same LCS within
    :data:`LCS_TOLERANCE`.

    Two methods can coincide at some options (SAND-mask is AND-mask when its smoothing makes no difference), and
    two identical rows in a table look like a copying error; the note says the runs themselves agree, split by
    split. Groups compare only when they ran the same seeds (at least one).

    >>> from pathlib import Path
    >>> def run(group, seed, acc, lcs=0.5):
    ...     r = JobRecord(group, group, seed, 0, Path("."), finished=True)
    ...     r.result = {"eval": {"summary": {"id_accuracy": acc}, "lcs": {"canonical": lcs}}}
    ...     return r
    >>> runs = {"a": (0.9, 0.5), "b": (0.9, 0.50001), "c": (0.8, 0.5), "d": (0.9, 0.6)}
    >>> groups = {g: _group_stats(g, [run(g, 0, a, lcs), run(g, 1, 0.5)]) for g, (a, lcs) in runs.items()}
    >>> identical_groups(groups)  # doctest: +NORMALIZE_WHITESPACE
    {('a', 'b'): 'a and b: the same answers on each of their 2 seeds (every split, every accuracy and rate) and
    the same LCS to three decimals: the rows agree because the runs do.'}
    """
    by_summary: dict[tuple[Any, ...], list[tuple[str, list[float | None]]]] = {}
    for g, stats in groups.items():
        if stats.ablation is not None or not stats.runs:
            continue
        runs = sorted(stats.runs, key=lambda r: r.seed)
        key = tuple((r.seed, json.dumps(r.summary, sort_keys=True)) for r in runs)
        by_summary.setdefault(key, []).append((g, [r.metric("eval", "lcs", "canonical") for r in runs]))
    notes = {}
    for key, members in by_summary.items():
        while members:
            (first, lcs), rest = members[0], members[1:]
            same = [first] + [g for g, other in rest if _lcs_close(lcs, other)]
            members = [(g, other) for g, other in rest if g not in same]
            if len(same) < 2:
                continue
            names = sorted(same)
            seeds = f"each of their {len(key)} seeds" if len(key) > 1 else "their only seed"
            notes[tuple(names)] = (
                f"{', '.join(names[:-1])} and {names[-1]}: the same answers on {seeds} (every split, every "
                "accuracy and rate) and the same LCS to three decimals: the rows agree because the runs do."
            )
    return notes


def aggregate(selected: Iterable[JobRecord], *, select: str = "val") -> Aggregate:
    """Per-group statistics of the selected runs, plus the derived ERM-relative columns."""
    groups = {g: _group_stats(g, runs) for g, runs in by_group(selected).items()}
    erm_base, denominator, oracle_note = _oracle_share(groups)
    erm_step = groups[ERM].step_time_s.mean if ERM in groups else None
    for stats in groups.values():
        ood = stats.overall["ood_accuracy"].mean
        if denominator is not None and ood is not None and erm_base is not None:
            stats.oracle_gap_closed = (ood - erm_base) / denominator
        if erm_step and stats.step_time_s.mean is not None:
            stats.step_time_rel_erm = stats.step_time_s.mean / erm_step
    families = {fam for s in groups.values() for fam in s.by_family}
    return Aggregate(
        groups=groups,
        families=sorted(families),
        oracle_note=oracle_note,
        identical_notes=identical_groups(groups),
        # lodo selects on jobs outside the table: the column shows the ordinary validation accuracy then.
        val_metric="val_accuracy" if select == "lodo" else SELECTION_METRICS[select],
    )


def main_groups(groups: Mapping[str, GroupStats]) -> list[str]:
    """Main-comparison groups (no ablation) in table order: erm, the others alphabetically, oracle."""
    return group_order(g for g, s in groups.items() if s.ablation is None)


def ablation_rows(groups: Mapping[str, GroupStats], name: str) -> list[tuple[str, str]]:
    """``(group, row label)`` pairs of one ablation table, ordered by the ablated value (see module docstring)."""
    members = [s for s in groups.values() if s.ablation is not None and s.ablation.get("name") == name]
    rows = [(s.ablation.get("value"), s.group, s.group) for s in members if s.ablation is not None]
    baseline = _baseline_group(groups, members)
    if baseline is not None:
        value = shared_hparam(groups[baseline].runs, name)
        if value is UNKNOWN:
            rows.insert(0, (None, baseline, f"{baseline} (baseline)"))
            rows[1:] = sorted(rows[1:], key=lambda r: ablation_sort_key(r[0]))
            return [(g, label) for _, g, label in rows]
        rows.append((value, baseline, f"{baseline} (baseline, {name}={value})"))
    # sorted() is stable: the baseline follows an ablation row of equal value.
    return [(g, label) for _, g, label in sorted(rows, key=lambda r: ablation_sort_key(r[0]))]


def _baseline_group(groups: Mapping[str, GroupStats], members: list[GroupStats]) -> str | None:
    main = {g for g, s in groups.items() if s.ablation is None}
    candidates = [s.group.split(":", 1)[0] for s in members if ":" in s.group]
    candidates += [s.algorithm for s in members if s.algorithm]
    return next((c for c in candidates if c in main), None)


def family_stat(stats: GroupStats, family: str, metric: str) -> MeanCI:
    """One family's statistic of a group (an empty one when the group has no such family)."""
    return stats.by_family.get(family, {}).get(metric, MeanCI(None, None, 0))


def ablation_names(groups: Mapping[str, GroupStats]) -> list[str]:
    return sorted({s.ablation["name"] for s in groups.values() if s.ablation is not None})


def csv_rows(agg: Aggregate, groups: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group × family × metric, raw fractions (not percent); ``family`` is "overall" for the totals.

    ``step_time_s`` is seconds; ``step_time_rel_erm`` and ``oracle_gap_closed`` are ratios without a CI.
    """
    rows: list[dict[str, Any]] = []

    def add(group: str, family: str, metric: str, stat: MeanCI) -> None:
        rows.append({"group": group, "family": family, "metric": metric, **stat.to_json()})

    for g in groups:
        s = agg.groups[g]
        for metric, stat in s.overall.items():
            add(g, "overall", metric, stat)
        add(g, "overall", "step_time_s", s.step_time_s)
        add(g, "overall", "step_time_rel_erm", MeanCI(s.step_time_rel_erm, None, s.n_seeds))
        add(g, "overall", "oracle_gap_closed", MeanCI(s.oracle_gap_closed, None, s.n_seeds))
        for fam in agg.families:
            for metric in FAMILY_METRICS:
                add(g, fam, metric, family_stat(s, fam, metric))
    return rows


def summary_dict(agg: Aggregate, groups: Sequence[str]) -> dict[str, Any]:
    """The JSON-able ``summary.json``: ``{group: {n_seeds, ood_accuracy: {mean, ci95, n}, ..., by_family}}``."""
    out: dict[str, Any] = {}
    for g in groups:
        s = agg.groups[g]
        out[g] = {
            "n_seeds": s.n_seeds,
            **{metric: stat.to_json() for metric, stat in s.overall.items()},
            "step_time_s": s.step_time_s.to_json(),
            "step_time_rel_erm": s.step_time_rel_erm,
            "oracle_gap_closed": s.oracle_gap_closed,
            "ablation": s.ablation,
            "seeds": sorted(r.seed for r in s.runs),
            "by_family": {
                fam: {m: st.to_json() for m, st in stats.items()} for fam, stats in s.by_family.items()
            },
        }
    return out
