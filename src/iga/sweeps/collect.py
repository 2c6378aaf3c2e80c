"""``iga collect``: DomainBed-style result tables (mean ± 95% CI over seeds) from a sweep folder.

Reads ``SWEEP_DIR/jobs/*/{job.json,result.json,done}`` (the sweep folder contract shared with ``iga sweep`` and
``iga plot``) and writes ``results.md``, ``results.tex``, ``results.csv``, ``summary.json`` and ``cost.json`` (the
job time the finished runs recorded, :mod:`iga.sweeps.sweep_cost`; also the last table).

Pipeline, one function each:

1. :func:`~iga.sweeps.sweep_results.load_finished` reads every job; jobs without the ``done`` marker are
   counted as unfinished, never used. A folder of plain run folders (``runs/demo``) is accepted too.
2. :func:`~iga.sweeps.sweep_results.select_models` keeps, per (group, seed), the hparams draw with the
   best in-domain validation accuracy (DomainBed's "training-domain validation"): the test splits never choose.
3. :func:`~iga.sweeps.collect_aggregate.aggregate` turns the kept runs into per-group statistics
   (:func:`~iga.sweeps.sweep_results.mean_ci`: mean and Student-t 95% CI half-width).
4. :func:`~iga.sweeps.collect_tables.build_tables` lays them out; :mod:`iga.sweeps.collect_render` prints
   Markdown, LaTeX and CSV.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iga.sweeps.collect_aggregate import ablation_names, aggregate, csv_rows, main_groups, summary_dict
from iga.sweeps.collect_render import (
    DAGGER,
    MIN_SEEDS,
    ResultTable,
    render_csv,
    render_latex,
    render_markdown,
)
from iga.sweeps.collect_tables import build_tables
from iga.sweeps.sweep_cost import cost_table, sweep_cost
from iga.sweeps.sweep_results import (
    JobRecord,
    is_run_collection,
    load_finished,
    read_json_object,
    select_models,
    selection_line,
)
from iga.utils.io import atomic_write_json, atomic_write_text

MODEL_SELECTION = selection_line("val")
FORMATS = ("md", "tex", "csv")
FILE_NAMES = {"md": "results.md", "tex": "results.tex", "csv": "results.csv"}
SUMMARY_NAME = "summary.json"
COST_NAME = "cost.json"


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
