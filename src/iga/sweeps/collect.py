"""``iga collect``: DomainBed-style result tables (mean ± 95% CI over seeds) from a sweep folder.

Reads ``SWEEP_DIR/jobs/*/{job.json,result.json,done}`` (the sweep folder contract shared with ``iga sweep`` and
``iga plot``) and writes ``results.md``, ``results.tex``, ``results.csv``, ``summary.json`` and ``cost.json`` (the
job time the finished runs recorded, :mod:`iga.sweeps.sweep_cost`; also the last table).

Pipeline, one function each:

1. :func:`~iga.sweeps.sweep_results.load_finished` reads every job; jobs without the ``done`` marker are
   counted as unfinished, never used. A folder of plain run folders (``runs/demo``) is accepted too.
2. :func:`~iga.sweeps.sweep_results.select_models` keeps, per (group, seed), the hparams draw with the
   best in-domain validation accuracy (DomainBed's "training-domain validation"): the test splits never choose.
3. :func:`aggregate` turns the kept runs into per-group statistics
   (:func:`~iga.sweeps.sweep_results.mean_ci`: mean and Student-t 95% CI half-width).
4. :func:`build_tables` lays them out; :mod:`iga.sweeps.collect_render` prints Markdown, LaTeX and CSV.

The reading, selection, statistics and group order are those of ``iga plot`` too
(:mod:`iga.sweeps.sweep_results`), so a table cell and the bar drawn for it are the same number.

Conventions (all in one place so that the tables, the CSV and ``summary.json`` agree):

* a cell is "mean ± h" with h = t(0.975, n−1)·sd/√n, sd with ddof=1; a single seed shows "mean (n=1)";
* null values (no records behind a number) and NaN are skipped; a cell without any value shows "–";
* cells with fewer than 3 seeds carry "†" and are listed in a warning line under their table;
* "ERM→oracle gap closed" = (OOD_g − OOD_erm)/(OOD_oracle − OOD_erm) on seed means (no CI), "–" without groups
  named exactly ``erm`` and ``oracle`` or when the denominator is ≤ 0.5 points (a footnote says which);
* "step time ×ERM" = mean ``train.step_time_s`` of the group / that of group ``erm``;
* group order: ``erm``, the other main-comparison groups alphabetically, ``oracle``; every ablation family (jobs
  whose ``ablation`` is not null) gets its own table, rows ordered by the ablated value (numbers, then
  None/"none", then other values alphabetically), with the main-comparison
  baseline row added: the group named like the ablation groups' prefix before ``:`` (``iga:tau=3`` → ``iga``),
  else the group named after their algorithm. The baseline sits at its own value when every baseline run records
  the ablated option in ``hparams``, first otherwise.

Example (a two-seed sweep written by hand)::

    >>> import json, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for seed, ood in ((0, 0.2), (1, 0.4)):
    ...     job = root / "jobs" / f"erm{seed}"
    ...     job.mkdir(parents=True)
    ...     _ = (job / "job.json").write_text(json.dumps({"job_id": f"erm{seed}", "group": "erm", "seed": seed}))
    ...     summary = {"id_accuracy": 0.5, "ood_accuracy": ood, "gap": 0.5 - ood, "by_family": {}}
    ...     _ = (job / "result.json").write_text(json.dumps({"eval": {"summary": summary}, "train": {}}))
    ...     _ = (job / "done").write_text("")
    >>> out = collect(root, formats=("md",))
    >>> out.summary["erm"]["n_seeds"], round(out.summary["erm"]["ood_accuracy"]["mean"], 6)
    (2, 0.3)
    >>> sorted(p.name for p in out.written)
    ['cost.json', 'results.md', 'summary.json']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iga.sweeps.collect_render import (
    DAGGER,
    DASH,
    MIN_SEEDS,
    FewSeedCells,
    ResultTable,
    format_number,
    render_csv,
    render_latex,
    render_markdown,
)
from iga.sweeps.sweep_cost import cost_table, sweep_cost
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
    is_run_collection,
    load_finished,
    mean_ci,
    read_json_object,
    select_models,
    selection_line,
    shared_hparam,
)
from iga.utils.io import atomic_write_json, atomic_write_text

MODEL_SELECTION = selection_line("val")
FORMATS = ("md", "tex", "csv")
FILE_NAMES = {"md": "results.md", "tex": "results.tex", "csv": "results.csv"}
SUMMARY_NAME = "summary.json"
COST_NAME = "cost.json"
#: ERM→oracle share is left out ("–") when oracle and ERM OOD accuracies differ by at most this (absolute).
MIN_ORACLE_GAP = 0.005
#: Per-family metrics (``eval.summary.by_family[fam][metric]``) and their table titles.
FAMILY_METRICS = {
    "ood_accuracy": "OOD-surface accuracy by family (%)",
    "id_accuracy": "ID accuracy by family (%)",
    "gap": "ID–OOD gap by family (points)",
}
OVERALL_COLUMNS = (
    "Group",
    "Seeds",
    "Val acc %",
    "ID acc %",
    "OOD-surface acc %",
    "ID–OOD gap (pts)",
    "LCS ↓",
    "ERM→oracle gap closed %",
    "Step time ×ERM",
)


# ------------------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------------------


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
        val_metric=SELECTION_METRICS[select],
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


# ------------------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------------------


def _overall_columns(agg: Aggregate) -> list[str]:
    cols = list(OVERALL_COLUMNS)
    if agg.val_metric == "val_nocue_accuracy":
        cols[2] = "Val no-cue acc %"
    return cols


def _overall_row(
    stats: GroupStats, label: str, dagger: FewSeedCells, cols: Sequence[str], val_metric: str
) -> list[str]:
    closed = stats.oracle_gap_closed
    rel = stats.step_time_rel_erm
    return [
        label,
        str(stats.n_seeds),
        dagger.cell(label, cols[2], stats.overall[val_metric]),
        dagger.cell(label, cols[3], stats.overall["id_accuracy"]),
        dagger.cell(label, cols[4], stats.overall["ood_accuracy"]),
        dagger.cell(label, cols[5], stats.overall["gap"]),
        dagger.cell(label, cols[6], stats.overall["lcs"], scale=1.0, digits=3),
        DASH if closed is None else format_number(100 * closed, 1),
        DASH if rel is None else f"{rel:.2f}×",
    ]


def _overall_notes(agg: Aggregate) -> list[str]:
    notes = [
        "ERM→oracle gap closed = (OOD_g − OOD_erm) / (OOD_oracle − OOD_erm) on seed means; "
        "step time ×ERM = mean train.step_time_s / that of erm (both without CI). LCS: lower is more consistent."
    ]
    return notes + ([agg.oracle_note] if agg.oracle_note else [])


def _overall_table(title: str, agg: Aggregate, rows: Sequence[tuple[str, str]]) -> ResultTable:
    dagger = FewSeedCells()
    cols = _overall_columns(agg)
    body = [_overall_row(agg.groups[g], label, dagger, cols, agg.val_metric) for g, label in rows]
    return ResultTable(title, cols, body, dagger.line(), _overall_notes(agg))


SHORTCUT_COLUMNS = (
    "Group",
    "Seeds",
    "Val acc %, cues",
    "Val acc %, no cues",
    "Cue gain (pts)",
    "Wrong cue followed %",
    "Same problems, cue hidden %",
)


def _shortcut_table(agg: Aggregate, groups: Sequence[str]) -> ResultTable:
    """Shortcut reliance: validation with and without cues, and how often a wrong cue's value is answered."""
    dagger = FewSeedCells()
    cols = SHORTCUT_COLUMNS
    body = []
    for g in groups:
        o = agg.groups[g].overall
        body.append(
            [
                g,
                str(agg.groups[g].n_seeds),
                dagger.cell(g, cols[2], o["val_accuracy"]),
                dagger.cell(g, cols[3], o["val_nocue_accuracy"]),
                dagger.cell(g, cols[4], o["cue_gain"]),
                dagger.cell(g, cols[5], o["cue_follow"]),
                dagger.cell(g, cols[6], o["cue_follow_nocue"]),
            ]
        )
    notes = [
        "Paired on the same validation problems (training domains): cue gain = val accuracy with the cues − without "
        "them; wrong cue followed = share of answers equal to the value of a wrong cue, with the cue shown and with "
        "it hidden (the second is what the model answers anyway). A model that ignores cues has gain ≈ 0 and equal "
        "follow rates. Needs jobs that evaluated the val_nocue split."
    ]
    return ResultTable("Shortcut reliance", list(cols), body, dagger.line(), notes)


def _family_stat(stats: GroupStats, family: str, metric: str) -> MeanCI:
    return stats.by_family.get(family, {}).get(metric, MeanCI(None, None, 0))


def _family_table(metric: str, agg: Aggregate, groups: Sequence[str]) -> ResultTable:
    dagger = FewSeedCells()
    body = []
    for g in groups:
        stats = agg.groups[g]
        cells = [dagger.cell(g, fam, _family_stat(stats, fam, metric)) for fam in agg.families]
        body.append([g, *cells, dagger.cell(g, "overall", stats.overall[metric])])
    return ResultTable(FAMILY_METRICS[metric], ["Group", *agg.families, "overall"], body, dagger.line())


def build_tables(agg: Aggregate, ablations: Sequence[str] | None = None) -> list[ResultTable]:
    """Overall table, one table per family metric, one per ablation family (``ablations``: which; None = all)."""
    tables = []
    main = main_groups(agg.groups)
    if main:
        tables.append(_overall_table("Overall", agg, [(g, g) for g in main]))
        if any(agg.groups[g].overall["cue_gain"].n for g in main):
            tables.append(_shortcut_table(agg, main))
        if agg.families:
            tables += [_family_table(metric, agg, main) for metric in FAMILY_METRICS]
    names = ablation_names(agg.groups) if ablations is None else list(ablations)
    for name in names:
        rows = ablation_rows(agg.groups, name)
        tables.append(_overall_table(f"Ablation: {name}", agg, rows))
        if any(agg.groups[g].overall["cue_gain"].n for g, _ in rows):
            shortcut = _shortcut_table(agg, [g for g, _ in rows])
            shortcut.title = f"Shortcut reliance — ablation: {name}"
            shortcut.rows = [[label, *row[1:]] for (_, label), row in zip(rows, shortcut.rows, strict=True)]
            tables.append(shortcut)
    return tables


def ablation_names(groups: Mapping[str, GroupStats]) -> list[str]:
    return sorted({s.ablation["name"] for s in groups.values() if s.ablation is not None})


# ------------------------------------------------------------------------------------------------------------
# Machine-readable output: CSV rows and summary.json
# ------------------------------------------------------------------------------------------------------------


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
                add(g, fam, metric, _family_stat(s, fam, metric))
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


# ------------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------------


@dataclass
class CollectResult:
    """What :func:`collect` found, rendered and wrote."""

    records: list[JobRecord]
    selected: list[JobRecord]
    tables: list[ResultTable]
    markdown: str
    latex: str
    csv: str
    summary: dict[str, Any]
    #: What the finished jobs recorded as their time (:mod:`iga.sweeps.sweep_cost`), also in ``cost.json``.
    cost: dict[str, Any]
    #: One per table with "†" cells (also under the table); the CLI prints them on stderr.
    warnings: list[str]
    #: Model-selection notes (draws without val_accuracy).
    notes: list[str]
    written: list[Path]
    out_dir: Path

    @property
    def n_finished(self) -> int:
        return sum(r.finished for r in self.records)

    @property
    def n_unfinished(self) -> int:
        return len(self.records) - self.n_finished


def _sweep_name(root: Path) -> str:
    sweep_json = root / "sweep.json"
    if sweep_json.is_file():
        name = read_json_object(sweep_json).get("name")
        if isinstance(name, str) and name:
            return name
    return root.resolve().name


def default_out_dir(sweep_dir: str | os.PathLike) -> Path:
    """The sweep folder itself; for a folder of plain runs, its ``collect/`` sub-folder.

    The demo's ``runs/demo`` already has a ``summary.json`` of its own, which collecting must not overwrite.
    """
    root = Path(sweep_dir)
    return root / "collect" if is_run_collection(root) else root


def collect(
    sweep_dir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] = FORMATS,
    ablation: str | Sequence[str] | None = None,
    select: str = "val",
) -> CollectResult:
    """Read, select, aggregate and write ``results.{md,tex,csv}`` (those in ``formats``) and ``summary.json``.

    ``select``: the model-selection split, ``val`` (DomainBed's in-domain validation) or ``val_nocue`` (the
    same instances without shortcut cues; see :func:`~iga.sweeps.sweep_results.select_models`).

    ``ablation`` names the ablation families to tabulate (None = all that the sweep has); the main-comparison
    groups are always included. Raises FileNotFoundError for a missing folder, ValueError when it holds no job,
    no finished job, an unknown format or ablation name.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"format: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(FORMATS)}")
    root = Path(sweep_dir)
    records, finished = load_finished(root)
    selected, notes = select_models(finished, select=select)
    agg = aggregate(selected, select=select)
    available = ablation_names(agg.groups)
    wanted = None if ablation is None else [ablation] if isinstance(ablation, str) else list(ablation)
    missing = [a for a in wanted or [] if a not in available]
    if missing:
        raise ValueError(
            f"ablation: {', '.join(missing)} not in the sweep (it has: {', '.join(available) or 'none'})"
        )
    tables = build_tables(agg, wanted)
    cost = sweep_cost(finished)
    tables.append(cost_table(cost))
    groups = main_groups(agg.groups) + [
        s.group
        for s in agg.groups.values()
        if s.ablation is not None and s.ablation["name"] in (wanted or available)
    ]
    header = [
        selection_line(select),
        f"jobs: {len(finished)} finished ({len(selected)} kept after model selection), "
        f"{len(records) - len(finished)} unfinished (not used)",
        f"cells: mean ± 95% CI half-width over seeds (Student's t); {DAGGER} = fewer than {MIN_SEEDS} seeds",
        f"written by `iga collect {root}`; regenerate with the same command rather than editing",
        *(f"note: {n}" for n in notes),
    ]
    title = f"Results: {_sweep_name(root)}"
    csv_text = render_csv(csv_rows(agg, groups))
    result = CollectResult(
        records=records,
        selected=selected,
        tables=tables,
        markdown=render_markdown(tables, header, title),
        latex=render_latex(tables, header, title),
        csv=csv_text,
        summary=summary_dict(agg, groups),
        cost=cost,
        warnings=[f"{t.title}: {t.warning}" for t in tables if t.warning],
        notes=notes,
        written=[],
        out_dir=Path(out_dir) if out_dir is not None else default_out_dir(root),
    )
    texts = {"md": result.markdown, "tex": result.latex, "csv": result.csv}
    for fmt in dict.fromkeys(formats):
        result.written.append(atomic_write_text(result.out_dir / FILE_NAMES[fmt], texts[fmt]))
    result.written.append(atomic_write_json(result.out_dir / SUMMARY_NAME, result.summary))
    result.written.append(atomic_write_json(result.out_dir / COST_NAME, result.cost))
    return result
