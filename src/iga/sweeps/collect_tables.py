"""The tables of ``iga collect`` (:mod:`iga.sweeps.collect`): the overall table, shortcut reliance, one table
per family metric and one per ablation family, laid out from an :class:`~iga.sweeps.collect_aggregate.Aggregate`
(rendered to Markdown, LaTeX and CSV by :mod:`iga.sweeps.collect_render`).
"""

from __future__ import annotations

from collections.abc import Sequence

from iga.sweeps.collect_aggregate import (
    FAMILY_METRICS,
    Aggregate,
    GroupStats,
    ablation_names,
    ablation_rows,
    family_stat,
    main_groups,
)
from iga.sweeps.collect_render import (
    DASH,
    FewSeedCells,
    ResultTable,
    format_number,
)

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


def _overall_columns(agg: Aggregate) -> list[str]:
    cols = list(OVERALL_COLUMNS)
    if agg.val_metric == "val_nocue_accuracy":
        cols[2] = "Val no-cue acc %"
    elif agg.val_metric == "ood_accuracy":
        cols[2] = "Selected on: OOD acc % (oracle)"
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


def _overall_notes(agg: Aggregate, shown: Sequence[str]) -> list[str]:
    notes = [
        "ERM→oracle gap closed = (OOD_g − OOD_erm) / (OOD_oracle − OOD_erm) on seed means; "
        "step time ×ERM = mean train.step_time_s / that of erm (both without CI). LCS: lower is more consistent."
    ]
    same = [note for names, note in agg.identical_notes.items() if set(names) <= set(shown)]
    return notes + ([agg.oracle_note] if agg.oracle_note else []) + same


def _overall_table(title: str, agg: Aggregate, rows: Sequence[tuple[str, str]]) -> ResultTable:
    dagger = FewSeedCells()
    cols = _overall_columns(agg)
    body = [_overall_row(agg.groups[g], label, dagger, cols, agg.val_metric) for g, label in rows]
    return ResultTable(title, cols, body, dagger.line(), _overall_notes(agg, [g for g, _ in rows]))


SHORTCUT_COLUMNS = (
    "Group",
    "Seeds",
    "Val acc %, cues",
    "Val acc %, no cues",
    "Cue gain (pts)",
    "Wrong cue followed %",
    "Same problems, cue hidden %",
    "Every problem a wrong cue: followed %",
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
                dagger.cell(g, cols[7], o["wrongcue_follow"]),
            ]
        )
    notes = [
        "Paired on the same validation problems (training domains): cue gain = val accuracy with the cues − without "
        "them; wrong cue followed = share of answers equal to the value of a wrong cue, with the cue shown and with "
        "it hidden (the second is what the model answers anyway). A model that ignores cues has gain ≈ 0 and equal "
        "follow rates. Needs jobs that evaluated the val_nocue split. Every problem a wrong cue: the val_wrongcue "
        "split (every training-domain val problem shown a cue whose value is wrong), share answering the cue's "
        "value; – without that split."
    ]
    return ResultTable("Shortcut reliance", list(cols), body, dagger.line(), notes)


def _family_table(metric: str, agg: Aggregate, groups: Sequence[str]) -> ResultTable:
    dagger = FewSeedCells()
    body = []
    for g in groups:
        stats = agg.groups[g]
        cells = [dagger.cell(g, fam, family_stat(stats, fam, metric)) for fam in agg.families]
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
