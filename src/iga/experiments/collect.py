"""``iga collect``: DomainBed-style result tables (mean ± 95% CI over seeds) from a sweep folder.

Reads ``SWEEP_DIR/jobs/*/{job.json,result.json,done}`` (the sweep folder contract shared with ``iga sweep`` and
``iga plot``) and writes ``results.md``, ``results.tex``, ``results.csv`` and ``summary.json``.

Pipeline, one function each:

1. :func:`load_sweep` reads every job; jobs without the ``done`` marker are counted as unfinished, never used.
   A folder without ``jobs/`` whose sub-folders hold ``result.json`` (``runs/demo/erm``, ``runs/demo/iga``) is
   accepted too: group = ``config.algorithm``, seed = ``config.seed``, hparams_seed = 0.
2. :func:`select_models` keeps, per (group, seed), the hparams draw with the best in-domain validation accuracy
   (DomainBed's "training-domain validation"): the test splits never choose the model.
3. :func:`aggregate` turns the kept runs into per-group statistics (mean and Student-t 95% CI half-width).
4. :func:`build_tables` lays them out; :func:`render_markdown`, :func:`render_latex`, :func:`render_csv` print.

Conventions (all in one place so that the tables, the CSV and ``summary.json`` agree):

* a cell is "mean ± h" with h = t(0.975, n−1)·sd/√n, sd with ddof=1; a single seed shows "mean (n=1)";
* null values (no records behind a number) are skipped; a cell without any value shows "–";
* cells with fewer than 3 seeds carry "†" and are listed in a warning line under their table;
* "ERM→oracle gap closed" = (OOD_g − OOD_erm)/(OOD_oracle − OOD_erm) on seed means (no CI), "–" without groups
  named exactly ``erm`` and ``oracle`` or when the denominator is ≤ 0.5 points (a footnote says which);
* "step time ×ERM" = mean ``train.step_time_s`` of the group / that of group ``erm``;
* group order: ``erm``, the other main-comparison groups alphabetically, ``oracle``; every ablation family (jobs
  whose ``ablation`` is not null) gets its own table, rows ordered by the ablated value, with the main-comparison
  baseline row added: the group named like the ablation groups' prefix before ``:`` (``iga:tau=3`` → ``iga``),
  else the group named after their algorithm. The baseline sits at its own value when every baseline run records
  the ablated option in ``hparams``, first otherwise.

Example (a two-seed sweep written by hand)::

    >>> import json, tempfile
    >>> from pathlib import Path
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
    ['results.md', 'summary.json']
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json, atomic_write_text

MODEL_SELECTION = "model selection: in-domain validation accuracy (val split, training domains)"
FORMATS = ("md", "tex", "csv")
FILE_NAMES = {"md": "results.md", "tex": "results.tex", "csv": "results.csv"}
SUMMARY_NAME = "summary.json"
#: Below this many seeds a CI is too wide to read (or absent): the cell is marked and listed in a warning.
MIN_SEEDS = 3
#: ERM→oracle share is left out ("–") when oracle and ERM OOD accuracies differ by at most this (absolute).
MIN_ORACLE_GAP = 0.005
DAGGER = "†"
DASH = "–"
#: Group names with a fixed role in the main comparison.
ERM, ORACLE = "erm", "oracle"
#: Per-family metrics (``eval.summary.by_family[fam][metric]``) and their table titles.
FAMILY_METRICS = {
    "ood_accuracy": "OOD-surface accuracy by family (%)",
    "id_accuracy": "ID accuracy by family (%)",
    "gap": "ID–OOD gap by family (points)",
}
OVERALL_COLUMNS = (
    "Group",
    "Seeds",
    "ID acc %",
    "OOD-surface acc %",
    "ID–OOD gap (pts)",
    "LCS ↓",
    "ERM→oracle gap closed %",
    "Step time ×ERM",
)


# ----------------------------------------------------------------------------------------------------------------
# 1. Reading the sweep folder
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class JobRecord:
    """One job of a sweep: its entry from ``job.json`` and, once ``done`` exists, its ``result.json``."""

    job_id: str
    group: str
    seed: int
    hparams_seed: int
    path: Path
    algorithm: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    ablation: dict[str, Any] | None = None
    finished: bool = False
    result: dict[str, Any] | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return ((self.result or {}).get("eval") or {}).get("summary") or {}

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    def metric(self, *keys: str) -> float | None:
        """The number at ``result[keys[0]][keys[1]]...``; None when absent or null, ValueError when not a number."""
        node: Any = self.result or {}
        for key in keys:
            if not isinstance(node, Mapping) or node.get(key) is None:
                return None
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise ValueError(f"{self.result_path}: {'.'.join(keys)}: expected a number or null, got {node!r}")
        return float(node)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _int_field(entry: Mapping[str, Any], key: str, path: Path, default: int | None = None) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: {key}: expected an integer, got {value!r}")
    return value


def _read_job(job_dir: Path) -> JobRecord:
    path = job_dir / "job.json"
    entry = _read_json_object(path)
    group = entry.get("group")
    if not isinstance(group, str) or not group:
        raise ValueError(f"{path}: group: expected a non-empty string, got {group!r}")
    ablation = entry.get("ablation")
    if ablation is not None and not (isinstance(ablation, dict) and isinstance(ablation.get("name"), str)):
        raise ValueError(
            f"{path}: ablation: expected null or {{'name': str, 'value': ...}}, got {ablation!r}"
        )
    hparams = entry.get("hparams") or {}
    if not isinstance(hparams, dict):
        raise ValueError(f"{path}: hparams: expected an object, got {hparams!r}")
    record = JobRecord(
        job_id=str(entry.get("job_id") or job_dir.name),
        group=group,
        seed=_int_field(entry, "seed", path),
        hparams_seed=_int_field(entry, "hparams_seed", path, default=0),
        path=job_dir,
        algorithm=entry.get("algorithm"),
        hparams=hparams,
        ablation=ablation,
    )
    if (job_dir / "done").exists():
        if not record.result_path.exists():
            raise FileNotFoundError(
                f"{record.result_path}: missing although {job_dir / 'done'} marks the job done"
            )
        record.result = _read_json_object(record.result_path)
        record.finished = True
        _require_summary(record)
    return record


def _require_summary(record: JobRecord) -> None:
    if not isinstance(record.summary, dict) or not record.summary:
        raise ValueError(
            f"{record.result_path}: eval.summary: missing (the run is finished but was not evaluated)"
        )


def _read_run_folder(run_dir: Path) -> JobRecord:
    """A plain ``iga train`` run folder (the demo's ``erm``/``iga``), seen as a one-job sweep entry."""
    path = run_dir / "result.json"
    result = _read_json_object(path)
    config = result.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("algorithm"), str):
        raise ValueError(f"{path}: config.algorithm: missing (needed to name the run's group)")
    seed = _int_field(config, "seed", path, default=0)
    record = JobRecord(
        job_id=run_dir.name,
        group=config["algorithm"],
        seed=seed,
        hparams_seed=0,
        path=run_dir,
        algorithm=config["algorithm"],
        hparams=dict(config.get("algorithm_options") or {}),
        result=result,
    )
    # A run folder has no ``done`` marker: it counts as finished once evaluation wrote its summary.
    record.finished = bool(record.summary)
    return record


def load_sweep(sweep_dir: str | os.PathLike) -> list[JobRecord]:
    """Every job of the sweep, finished or not (see :attr:`JobRecord.finished`), in job-folder order.

    A ``jobs/<id>/`` folder without ``job.json`` is a job still being written and is skipped. Without a ``jobs/``
    folder, the sub-folders of ``sweep_dir`` that hold a ``result.json`` are read as runs instead.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such sweep folder")
    jobs_dir = root / "jobs"
    if jobs_dir.is_dir():
        return [_read_job(d) for d in sorted(jobs_dir.iterdir()) if (d / "job.json").is_file()]
    return [_read_run_folder(d) for d in sorted(root.iterdir()) if (d / "result.json").is_file()]


def is_run_collection(sweep_dir: str | os.PathLike) -> bool:
    """True for a folder of plain run folders (no ``jobs/``), like the demo's ``runs/demo``."""
    return not (Path(sweep_dir) / "jobs").is_dir()


# ----------------------------------------------------------------------------------------------------------------
# 2. Model selection
# ----------------------------------------------------------------------------------------------------------------


def select_models(records: Iterable[JobRecord]) -> tuple[list[JobRecord], list[str]]:
    """Per (group, seed), the finished hparams draw with the highest ``eval.summary.val_accuracy``.

    Ties go to the lowest ``hparams_seed``; when no draw reports a validation accuracy, hparams_seed 0 (else the
    lowest) is kept and a note says so. Returns the kept records (sorted by group, seed) and those notes.
    """
    by_key: dict[tuple[str, int], list[JobRecord]] = {}
    for r in records:
        if r.finished:
            by_key.setdefault((r.group, r.seed), []).append(r)
    kept: list[JobRecord] = []
    notes: list[str] = []
    for (group, seed), draws in sorted(by_key.items()):
        draws = sorted(draws, key=lambda r: r.hparams_seed)
        scored = [(r.metric("eval", "summary", "val_accuracy"), r) for r in draws]
        with_val = [(v, r) for v, r in scored if v is not None]
        if with_val:
            # max() keeps the first of equal keys, and draws are sorted by hparams_seed: ties → lowest seed.
            kept.append(max(with_val, key=lambda vr: vr[0])[1])
        else:
            default = next((r for r in draws if r.hparams_seed == 0), draws[0])
            kept.append(default)
            if len(draws) > 1:
                notes.append(
                    f"{group}, seed {seed}: no val_accuracy in any of its {len(draws)} hparams draws; "
                    f"kept hparams_seed {default.hparams_seed} without selection"
                )
    return kept, notes


# ----------------------------------------------------------------------------------------------------------------
# 3. Statistics
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile ``scipy.stats.t.ppf(p, df)`` (cached: a table asks for the same few df).

    >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 1), 3)
    (4.303, 12.706)
    """
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Stat:
    """Mean and 95% CI half-width over ``n`` seeds (``ci95`` None when n < 2, ``mean`` None when n = 0)."""

    mean: float | None
    ci95: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n}


def mean_ci(values: Iterable[float | None]) -> Stat:
    """Mean ± t(0.975, n−1)·sd/√n over the non-null values.

    >>> s = mean_ci([0.2, 0.3, None, 0.4])
    >>> s.n, round(s.mean, 6), round(s.ci95, 4)
    (3, 0.3, 0.2484)
    """
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return Stat(None, None, 0)
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return Stat(mean, None, 1)
    half = t_quantile(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return Stat(mean, half, len(xs))


# ----------------------------------------------------------------------------------------------------------------
# 4. Aggregation
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class GroupStats:
    """Everything the tables show about one group (one row)."""

    group: str
    runs: list[JobRecord]
    ablation: dict[str, Any] | None
    overall: dict[str, Stat]
    by_family: dict[str, dict[str, Stat]]
    step_time_s: Stat
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


def _group_stats(group: str, runs: list[JobRecord]) -> GroupStats:
    families = sorted({fam for r in runs for fam in (r.summary.get("by_family") or {})})
    return GroupStats(
        group=group,
        runs=runs,
        ablation=runs[0].ablation,
        overall={
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
                f"ERM→oracle gap closed: – because oracle OOD-surface accuracy ({100 * oracle:.1f}%) exceeds ERM's "
                f"({100 * erm:.1f}%) by {100 * denominator:.1f} points, not more than {100 * MIN_ORACLE_GAP:.1f}: "
                "a share of so small a gap would be noise."
            ),
        )
    return erm, denominator, ""


def aggregate(selected: Iterable[JobRecord]) -> Aggregate:
    """Per-group statistics of the selected runs, plus the derived ERM-relative columns."""
    by_group: dict[str, list[JobRecord]] = {}
    for r in selected:
        by_group.setdefault(r.group, []).append(r)
    groups = {g: _group_stats(g, runs) for g, runs in by_group.items()}
    erm_base, denominator, oracle_note = _oracle_share(groups)
    erm_step = groups[ERM].step_time_s.mean if ERM in groups else None
    for stats in groups.values():
        ood = stats.overall["ood_accuracy"].mean
        if denominator is not None and ood is not None and erm_base is not None:
            stats.oracle_gap_closed = (ood - erm_base) / denominator
        if erm_step and stats.step_time_s.mean is not None:
            stats.step_time_rel_erm = stats.step_time_s.mean / erm_step
    families = {fam for s in groups.values() for fam in s.by_family}
    return Aggregate(groups=groups, families=sorted(families), oracle_note=oracle_note)


def main_groups(groups: Mapping[str, GroupStats]) -> list[str]:
    """Main-comparison groups in table order: erm, the others alphabetically, oracle."""
    names = sorted(g for g, s in groups.items() if s.ablation is None)
    head = [ERM] if ERM in names else []
    tail = [ORACLE] if ORACLE in names else []
    return head + [g for g in names if g not in (ERM, ORACLE)] + tail


def _value_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


_UNKNOWN = object()


def _shared_hparam(runs: Sequence[JobRecord], name: str) -> Any:
    """The value of option ``name`` that every run records in ``hparams`` alike, else :data:`_UNKNOWN`."""
    values = [r.hparams.get(name, _UNKNOWN) for r in runs]
    first = values[0] if values else _UNKNOWN
    return first if all(v is not _UNKNOWN and v == first for v in values) else _UNKNOWN


def ablation_rows(groups: Mapping[str, GroupStats], name: str) -> list[tuple[str, str]]:
    """``(group, row label)`` pairs of one ablation table, ordered by the ablated value (see module docstring)."""
    members = [s for s in groups.values() if s.ablation is not None and s.ablation.get("name") == name]
    rows = [(s.ablation.get("value"), s.group, s.group) for s in members if s.ablation is not None]
    baseline = _baseline_group(groups, members)
    if baseline is not None:
        value = _shared_hparam(groups[baseline].runs, name)
        if value is _UNKNOWN:
            rows.insert(0, (None, baseline, f"{baseline} (baseline)"))
            rows[1:] = sorted(rows[1:], key=lambda r: _value_key(r[0]))
            return [(g, label) for _, g, label in rows]
        rows.append((value, baseline, f"{baseline} (baseline, {name}={value})"))
    # sorted() is stable: the baseline follows an ablation row of equal value.
    return [(g, label) for _, g, label in sorted(rows, key=lambda r: _value_key(r[0]))]


def _baseline_group(groups: Mapping[str, GroupStats], members: list[GroupStats]) -> str | None:
    main = {g for g, s in groups.items() if s.ablation is None}
    candidates = [s.group.split(":", 1)[0] for s in members if ":" in s.group]
    candidates += [s.algorithm for s in members if s.algorithm]
    return next((c for c in candidates if c in main), None)


# ----------------------------------------------------------------------------------------------------------------
# 5. Tables
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ResultTable:
    """One rendered-agnostic table: text cells (already formatted), notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    #: "† fewer than 3 seeds: ..." or "" when every cell has at least 3 seeds.
    warning: str = ""
    notes: list[str] = field(default_factory=list)


def _number(x: float, digits: int) -> str:
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"


def format_cell(stat: Stat, *, scale: float = 100.0, digits: int = 1) -> str:
    """``"30.0 ± 24.8"``, ``"30.0 (n=1)†"``, or ``"–"``; "†" marks fewer than :data:`MIN_SEEDS` seeds.

    >>> format_cell(mean_ci([0.2, 0.3, 0.4])), format_cell(mean_ci([0.25])), format_cell(mean_ci([None]))
    ('30.0 ± 24.8', '25.0 (n=1)†', '–')
    """
    if stat.mean is None:
        return DASH
    text = _number(scale * stat.mean, digits)
    text += " (n=1)" if stat.ci95 is None else f" ± {_number(scale * stat.ci95, digits)}"
    return text + (DAGGER if stat.n < MIN_SEEDS else "")


class _Dagger:
    """Collects the "†" cells of one table and phrases them as one warning line."""

    def __init__(self) -> None:
        self.cells: dict[str, list[tuple[str, int]]] = {}
        self.filled: dict[str, int] = {}

    def cell(self, label: str, column: str, stat: Stat, **fmt: Any) -> str:
        if stat.mean is not None:
            self.filled[label] = self.filled.get(label, 0) + 1
            if stat.n < MIN_SEEDS:
                self.cells.setdefault(label, []).append((column, stat.n))
        return format_cell(stat, **fmt)

    def line(self) -> str:
        parts = []
        for label, cells in self.cells.items():
            ns = {n for _, n in cells}
            if len(cells) == self.filled[label] and len(ns) == 1:
                parts.append(f"{label} (all cells, n={ns.pop()})")
            else:
                parts.append(f"{label} (" + ", ".join(f"{col} n={n}" for col, n in cells) + ")")
        return f"{DAGGER} fewer than {MIN_SEEDS} seeds: " + "; ".join(parts) if parts else ""


def _overall_row(stats: GroupStats, label: str, dagger: _Dagger) -> list[str]:
    cols = OVERALL_COLUMNS
    closed = stats.oracle_gap_closed
    rel = stats.step_time_rel_erm
    return [
        label,
        str(stats.n_seeds),
        dagger.cell(label, cols[2], stats.overall["id_accuracy"]),
        dagger.cell(label, cols[3], stats.overall["ood_accuracy"]),
        dagger.cell(label, cols[4], stats.overall["gap"]),
        dagger.cell(label, cols[5], stats.overall["lcs"], scale=1.0, digits=3),
        DASH if closed is None else _number(100 * closed, 1),
        DASH if rel is None else f"{rel:.2f}×",
    ]


def _overall_notes(agg: Aggregate) -> list[str]:
    notes = [
        "ERM→oracle gap closed = (OOD_g − OOD_erm) / (OOD_oracle − OOD_erm) on seed means; "
        "step time ×ERM = mean train.step_time_s / that of erm (both without CI). LCS: lower is more consistent."
    ]
    return notes + ([agg.oracle_note] if agg.oracle_note else [])


def _overall_table(title: str, agg: Aggregate, rows: Sequence[tuple[str, str]]) -> ResultTable:
    dagger = _Dagger()
    body = [_overall_row(agg.groups[g], label, dagger) for g, label in rows]
    return ResultTable(title, list(OVERALL_COLUMNS), body, dagger.line(), _overall_notes(agg))


def _family_stat(stats: GroupStats, family: str, metric: str) -> Stat:
    return stats.by_family.get(family, {}).get(metric, Stat(None, None, 0))


def _family_table(metric: str, agg: Aggregate, groups: Sequence[str]) -> ResultTable:
    dagger = _Dagger()
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
        if agg.families:
            tables += [_family_table(metric, agg, main) for metric in FAMILY_METRICS]
    names = ablation_names(agg.groups) if ablations is None else list(ablations)
    for name in names:
        tables.append(_overall_table(f"Ablation: {name}", agg, ablation_rows(agg.groups, name)))
    return tables


def ablation_names(groups: Mapping[str, GroupStats]) -> list[str]:
    return sorted({s.ablation["name"] for s in groups.values() if s.ablation is not None})


# ----------------------------------------------------------------------------------------------------------------
# 6. Renderers
# ----------------------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(tables: Sequence[ResultTable], header: Sequence[str], title: str) -> str:
    """GitHub pipe tables, each followed by its warning line and notes (one paragraph each)."""
    out = [f"# {title}", "", *(line for h in header for line in (h, ""))]
    for t in tables:
        out += [f"## {t.title}", ""]
        out.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
        out.append("|" + "|".join([":---", *["---:"] * (len(t.columns) - 1)]) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        out.append("")
        out += [line for note in [t.warning, *t.notes] if note for line in (note, "")]
    return "\n".join(out).rstrip("\n") + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "†": r"$^\dagger$",
    "×": r"$\times$",
    "↓": r"$\downarrow$",
    "→": r"$\to$",
    "−": "$-$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX specials and spell the few symbols the tables use as math.

    >>> latex_escape("ID acc % of iga_v2: 30.0 ± 1.2†")
    'ID acc \\% of iga\\_v2: 30.0 $\\pm$ 1.2$^\\dagger$'
    """
    return "".join(_LATEX.get(ch, ch) for ch in text)


def render_latex(tables: Sequence[ResultTable], header: Sequence[str], title: str) -> str:
    """One booktabs ``table`` per result table (needs ``\\usepackage{booktabs}``); notes as footnotesize text."""
    out = [f"% {title} (written by `iga collect`; needs \\usepackage{{booktabs}})"]
    out += [f"% {latex_escape(h)}" for h in header]
    for t in tables:
        out += ["", r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(t.title)}}}"]
        out.append(r"\begin{tabular}{l" + "r" * (len(t.columns) - 1) + "}")
        out += [r"\toprule", " & ".join(latex_escape(c) for c in t.columns) + r" \\", r"\midrule"]
        out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in t.rows]
        out += [r"\bottomrule", r"\end{tabular}"]
        notes = [n for n in [t.warning, *t.notes] if n]
        if notes:
            out += [
                r"\par\smallskip",
                r"{\footnotesize " + r" \par ".join(latex_escape(n) for n in notes) + r"\par}",
            ]
        out.append(r"\end{table}")
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("group", "family", "metric", "mean", "ci95", "n")


def csv_rows(agg: Aggregate, groups: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group × family × metric, raw fractions (not percent); ``family`` is "overall" for the totals.

    ``step_time_s`` is seconds; ``step_time_rel_erm`` and ``oracle_gap_closed`` are ratios without a CI.
    """
    rows: list[dict[str, Any]] = []

    def add(group: str, family: str, metric: str, stat: Stat) -> None:
        rows.append({"group": group, "family": family, "metric": metric, **stat.to_json()})

    for g in groups:
        s = agg.groups[g]
        for metric, stat in s.overall.items():
            add(g, "overall", metric, stat)
        add(g, "overall", "step_time_s", s.step_time_s)
        add(g, "overall", "step_time_rel_erm", Stat(s.step_time_rel_erm, None, s.n_seeds))
        add(g, "overall", "oracle_gap_closed", Stat(s.oracle_gap_closed, None, s.n_seeds))
        for fam in agg.families:
            for metric in FAMILY_METRICS:
                add(g, fam, metric, _family_stat(s, fam, metric))
    return rows


def _csv_value(value: Any) -> Any:
    # repr() keeps every digit of a float (the CSV is for machines); None becomes an empty field.
    return "" if value is None else repr(value) if isinstance(value, float) else value


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row[k]) for k in CSV_COLUMNS})
    return buf.getvalue()


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


# ----------------------------------------------------------------------------------------------------------------
# 7. Entry point
# ----------------------------------------------------------------------------------------------------------------


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
        name = _read_json_object(sweep_json).get("name")
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
) -> CollectResult:
    """Read, select, aggregate and write ``results.{md,tex,csv}`` (those in ``formats``) and ``summary.json``.

    ``ablation`` names the ablation families to tabulate (None = all that the sweep has); the main-comparison
    groups are always included. Raises FileNotFoundError for a missing folder, ValueError when it holds no job,
    no finished job, an unknown format or ablation name.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"format: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(FORMATS)}")
    root = Path(sweep_dir)
    records = load_sweep(root)
    if not records:
        raise ValueError(
            f"{root}: no jobs (expected {root / 'jobs'}/*/job.json or run folders with result.json)"
        )
    finished = [r for r in records if r.finished]
    if not finished:
        raise ValueError(f"{root}: none of its {len(records)} jobs has finished yet (no 'done' marker)")
    selected, notes = select_models(finished)
    agg = aggregate(selected)
    available = ablation_names(agg.groups)
    wanted = None if ablation is None else [ablation] if isinstance(ablation, str) else list(ablation)
    missing = [a for a in wanted or [] if a not in available]
    if missing:
        raise ValueError(
            f"ablation: {', '.join(missing)} not in the sweep (it has: {', '.join(available) or 'none'})"
        )
    tables = build_tables(agg, wanted)
    groups = main_groups(agg.groups) + [
        s.group
        for s in agg.groups.values()
        if s.ablation is not None and s.ablation["name"] in (wanted or available)
    ]
    header = [
        MODEL_SELECTION,
        f"jobs: {len(finished)} finished ({len(selected)} kept after model selection), "
        f"{len(records) - len(finished)} unfinished (not used)",
        f"cells: mean ± 95% CI half-width over seeds (Student's t); {DAGGER} = fewer than {MIN_SEEDS} seeds",
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
        warnings=[f"{t.title}: {t.warning}" for t in tables if t.warning],
        notes=notes,
        written=[],
        out_dir=Path(out_dir) if out_dir is not None else default_out_dir(root),
    )
    texts = {"md": result.markdown, "tex": result.latex, "csv": result.csv}
    for fmt in dict.fromkeys(formats):
        result.written.append(atomic_write_text(result.out_dir / FILE_NAMES[fmt], texts[fmt]))
    result.written.append(atomic_write_json(result.out_dir / SUMMARY_NAME, result.summary))
    return result
