"""Figures from a sweep folder (``iga plot DIR``): accuracy bars, loss curves, IGA mask statistics, LCS per layer
and ablation panels, each aggregated over seeds.

The folder is read here directly (``jobs/<id>/{job.json, result.json, log.jsonl, done}``, see the sweep folder
contract); a folder of plain run folders with ``result.json`` (``runs/demo``) works too, grouped by
``config.algorithm``. Only jobs with the ``done`` marker count: a job still training or evaluating has no result.
Where a (group, seed) has several hyper-parameter draws, the one with the best in-domain validation accuracy is
kept (:func:`select_by_validation`, the model selection of the result tables).

Error bars are 95% Student-t intervals over seeds, ``t(0.975, n-1) · sd / √n`` with ``sd`` at ``ddof=1``; with
one seed there is no interval.

Example (a folder of two plain runs):
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for algo, acc in (("erm", 0.5), ("iga", 0.75)):
    ...     (root / algo).mkdir()
    ...     summary = {"id_accuracy": acc, "ood_accuracy": acc, "ood_depth_accuracy": acc}
    ...     result = {"config": {"algorithm": algo, "seed": 0}, "eval": {"summary": summary, "lcs": None}}
    ...     _ = (root / algo / "result.json").write_text(json.dumps(result))
    >>> [p.name for p in plot_sweep(root, formats=("png",))]
    ['accuracy.png']
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iga.experiments.plots import _pyplot, read_log
from iga.utils.io import InputError, atomic_write_bytes

logger = logging.getLogger(__name__)

#: (summary key, axis label) of the accuracies shown; all are strict-extraction accuracies in [0, 1].
ACCURACY_METRICS: tuple[tuple[str, str], ...] = (
    ("id_accuracy", "ID"),
    ("ood_accuracy", "OOD-surface"),
    ("ood_depth_accuracy", "OOD-depth"),
)
#: (log key, panel title) of the IGA mask statistics; ANDMask/SAND-mask log only ``mask_mean``.
MASK_KEYS: tuple[tuple[str, str], ...] = (
    ("mask_mean", "mean mask value"),
    ("mask_below_half", "share of mask entries < 0.5"),
    ("vhat_mean", "mean V̂ (normalised cross-domain variance)"),
)
FIGURES = ("accuracy", "curves", "mask", "lcs_layers", "ablations")
SUPPORTED_FORMATS = ("png", "svg", "pdf")
PNG_DPI = 120


# ----------------------------------------------------------------------------------------------- statistics


def _number(x: Any) -> float | None:
    """``x`` as a finite float, or None for null / NaN / non-numbers (a diverged run logs NaN losses)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile ``t(0.975, df)`` for an integer ``df ≥ 1``.

    ``scipy.stats.t.ppf`` when scipy is installed, else :func:`_t_quantile_975_series` (equal to ~1e-12).

    >>> round(t_quantile_975(2), 4), round(t_quantile_975(1000), 3)
    (4.3027, 1.962)
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an integer >= 1, got {df!r}")
    try:
        from scipy.stats import t as student_t
    except ImportError:  # scipy is a declared dependency, but a bare environment still gets exact intervals
        return _t_quantile_975_series(df)
    return float(student_t.ppf(0.975, df))


def _t_quantile_975_series(df: int) -> float:
    """``t(0.975, df)`` without scipy: bisection on the closed-form CDF for integer degrees of freedom
    (Abramowitz & Stegun 26.7.3/26.7.4)."""
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < 0.95:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided_mass(mid, df) < 0.95:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _t_two_sided_mass(t: float, df: int) -> float:
    """``A(t|df) = P(|T| < t)`` for integer ``df`` (finite series in ``cos θ``, ``θ = atan(t/√df)``)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        # odd: (2/π)(θ + sinθ cosθ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ...)), the sum up to cos^(df-3) inside.
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    # even: sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ... up to cos^(df-2)θ).
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


@dataclass(frozen=True)
class MeanCI:
    """Mean over seeds with the 95% t-interval half-width (None for n ≤ 1); ``mean`` is None when ``n == 0``."""

    mean: float | None
    half_width: float | None
    n: int


def mean_ci95(values: Iterable[Any]) -> MeanCI:
    """Mean and 95% Student-t half-width of the finite numbers in ``values`` (nulls are skipped).

    >>> r = mean_ci95([0.2, 0.3, None, 0.4])
    >>> round(r.mean, 6), round(r.half_width, 4), r.n
    (0.3, 0.2484, 3)
    """
    xs = [x for x in map(_number, values) if x is not None]
    n = len(xs)
    if n == 0:
        return MeanCI(None, None, 0)
    mean = sum(xs) / n
    if n == 1:
        return MeanCI(mean, None, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return MeanCI(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


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
            value, step = _number(row.get(key)), row.get("step")
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


# ----------------------------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One finished run: its group (table row), seed, ablation membership, result.json and log rows."""

    run_dir: Path
    group: str
    seed: int | None
    ablation: dict[str, Any] | None
    hparams: dict[str, Any]
    result: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)
    hparams_seed: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        return ((self.result.get("eval") or {}).get("summary")) or {}

    @property
    def lcs(self) -> dict[str, Any]:
        return ((self.result.get("eval") or {}).get("lcs")) or {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})", file=path) from None


def _read_object(path: Path) -> dict[str, Any]:
    obj = _read_json(path)
    if not isinstance(obj, dict):
        raise InputError("must be a JSON object", file=path)
    return obj


def _read_log_rows(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return read_log(run_dir)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", file=run_dir / "log.jsonl") from None


def _load_job(job_dir: Path) -> Run:
    job = _read_object(job_dir / "job.json")
    group = job.get("group")
    if not isinstance(group, str) or not group:
        raise InputError("must be a non-empty string", file=job_dir / "job.json", field="group")
    ablation = job.get("ablation")
    if ablation is not None and not (isinstance(ablation, dict) and isinstance(ablation.get("name"), str)):
        raise InputError(
            'must be null or {"name": str, "value": ...}', file=job_dir / "job.json", field="ablation"
        )
    result_path = job_dir / "result.json"
    if not result_path.is_file():
        raise FileNotFoundError(f"{result_path}: job is marked done but has no result.json")
    return Run(
        run_dir=job_dir,
        group=group,
        seed=job.get("seed"),
        ablation=ablation,
        hparams=dict(job.get("hparams") or {}),
        result=_read_object(result_path),
        log=_read_log_rows(job_dir),
        hparams_seed=job.get("hparams_seed") or 0,
    )


def _load_plain_run(run_dir: Path) -> Run:
    result = _read_object(run_dir / "result.json")
    config = result.get("config") or {}
    algorithm = config.get("algorithm")
    if not isinstance(algorithm, str) or not algorithm:
        raise InputError("must be a non-empty string", file=run_dir / "result.json", field="config.algorithm")
    return Run(
        run_dir=run_dir,
        group=algorithm,
        seed=config.get("seed"),
        ablation=None,
        hparams=dict(config.get("algorithm_options") or {}),
        result=result,
        log=_read_log_rows(run_dir),
    )


def load_runs(sweep_dir: str | os.PathLike) -> list[Run]:
    """The finished runs of a sweep folder (``jobs/*/done``) or of a folder of plain run folders.

    Raises FileNotFoundError if the folder does not exist and ValueError if it holds no finished run.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    jobs = root / "jobs"
    if jobs.is_dir():
        runs = [_load_job(d) for d in sorted(jobs.iterdir()) if (d / "done").is_file()]
    else:
        runs = [_load_plain_run(d) for d in sorted(root.iterdir()) if (d / "result.json").is_file()]
    if not runs:
        raise ValueError(
            f"{root}: no finished jobs (looked for jobs/*/done, or run folders with result.json)"
        )
    return runs


def select_by_validation(runs: Iterable[Run]) -> list[Run]:
    """One run per (group, seed): the hyper-parameter draw with the best in-domain ``val_accuracy``.

    The same model selection as the result tables (DomainBed's training-domain validation), so a bar is a mean
    over seeds, never over random hyper-parameter draws. Ties, or no ``val_accuracy`` at all, keep the lowest
    ``hparams_seed``.
    """
    best: dict[tuple[str, Any], Run] = {}
    for run in runs:
        key = (run.group, run.seed)
        if key not in best or _selection_key(run) < _selection_key(best[key]):
            best[key] = run
    return list(best.values())


def _selection_key(run: Run) -> tuple[float, int]:
    val = _number(run.summary.get("val_accuracy"))
    return (-val if val is not None else math.inf, run.hparams_seed)


# ----------------------------------------------------------------------------------------------- grouping


def group_order(groups: Iterable[str]) -> list[str]:
    """Group order: "erm" first, "oracle" last, the rest alphabetically (the same order as the result tables).

    >>> group_order(["oracle", "iga", "erm", "dro"])
    ['erm', 'dro', 'iga', 'oracle']
    """
    rank = {"erm": 0, "oracle": 2}
    return sorted(set(groups), key=lambda g: (rank.get(g, 1), g))


def by_group(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs per group, groups in :func:`group_order`, runs by seed."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return {
        g: sorted(groups[g], key=lambda r: (r.seed is None, r.seed if isinstance(r.seed, int) else 0))
        for g in group_order(groups)
    }


def main_runs(runs: Iterable[Run]) -> list[Run]:
    return [r for r in runs if r.ablation is None]


def accuracy_table(runs: Iterable[Run]) -> dict[str, dict[str, MeanCI]]:
    """``{group: {metric: MeanCI}}`` of the main comparison (runs without ablation)."""
    return {
        group: {key: mean_ci95(r.summary.get(key) for r in members) for key, _ in ACCURACY_METRICS}
        for group, members in by_group(main_runs(runs)).items()
    }


def lcs_per_layer(runs: Iterable[Run]) -> tuple[dict[str, dict[int, MeanCI]], float | None]:
    """LCS per layer and group (main comparison), and the permutation baseline averaged over those runs."""
    table: dict[str, dict[int, MeanCI]] = {}
    baseline: list[Any] = []
    for group, members in by_group(main_runs(runs)).items():
        values: dict[int, list[Any]] = {}
        for run in members:
            per_layer = run.lcs.get("per_layer") or {}
            for layer, value in per_layer.items():
                try:
                    values.setdefault(int(layer), []).append(value)
                except ValueError:
                    raise InputError(
                        f"layer key {layer!r} is not an integer",
                        file=run.run_dir / "result.json",
                        field="eval.lcs.per_layer",
                    ) from None
            if per_layer:
                baseline.append(run.lcs.get("permutation_mean"))
        cells = {layer: mean_ci95(values[layer]) for layer in sorted(values)}
        cells = {layer: c for layer, c in cells.items() if c.n}
        if cells:
            table[group] = cells
    return table, mean_ci95(baseline).mean


def ablation_sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers first in numeric order, then None/"none", then other values alphabetically.

    >>> sorted([10, "none", 3, "cos", None, 0.5], key=ablation_sort_key)
    [0.5, 3, 10, None, 'none', 'cos']
    """
    if _number(value) is not None:
        return (0, float(value), "")
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return (1, 0.0, str(value))
    return (2, 0.0, str(value))


def format_value(value: Any) -> str:
    """Tick label of an ablation value: ``3.0`` → ``"3"``, ``None`` → ``"none"``."""
    if value is None:
        return "none"
    if _number(value) is not None:
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


def ablation_series(runs: Iterable[Run]) -> dict[str, list[AblationPoint]]:
    """Per ablation name, one point per value (sorted by :func:`ablation_sort_key`) with ID / OOD accuracy.

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
            known = {format_value(r.hparams[name]) for r in members if name in r.hparams}
            if members and len(known) == 1 and all(name in r.hparams for r in members):
                label = known.pop()
                if label not in entries:
                    entries[label] = {"value": members[0].hparams[name], "runs": members, "baseline": True}
        series = []
        for label, entry in sorted(entries.items(), key=lambda kv: ablation_sort_key(kv[1]["value"])):
            members = entry["runs"]
            series.append(
                AblationPoint(
                    value=entry["value"],
                    label=label,
                    groups=tuple(group_order(r.group for r in members)),
                    metrics={
                        key: mean_ci95(r.summary.get(key) for r in members)
                        for key in ("ood_accuracy", "id_accuracy")
                    },
                    n_runs=len(members),
                    baseline=entry.get("baseline", False),
                )
            )
        out[name] = series
    return out


# ----------------------------------------------------------------------------------------------- figures


@dataclass
class SweepPlots:
    """What :func:`render_sweep_plots` wrote, and why each missing figure was skipped."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _colours(groups: Sequence[str]) -> dict[str, Any]:
    # One colour per group across all figures, so "iga" is the same colour in the bars and in the curves.
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return {g: cmap(i % cmap.N) for i, g in enumerate(groups)}


def _pct(x: float | None) -> float:
    return math.nan if x is None else 100 * x


def _pct_err(c: MeanCI) -> float:
    # NaN draws no error bar at all (one seed), where 0 would draw a cap claiming zero spread.
    return math.nan if c.half_width is None else 100 * c.half_width


def _accuracy_figure(runs: list[Run], colours: Mapping[str, Any]) -> Any:
    table = accuracy_table(runs)
    table = {g: cells for g, cells in table.items() if any(c.n for c in cells.values())}
    if not table:
        return "no main-comparison run has an accuracy in eval.summary"
    plt = _pyplot()
    groups = list(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.9 * len(groups) * len(ACCURACY_METRICS) / 2), 4.2))
    width = 0.8 / len(groups)
    runs_per_group = {g: len(m) for g, m in by_group(main_runs(runs)).items()}
    for i, group in enumerate(groups):
        cells = [table[group][key] for key, _ in ACCURACY_METRICS]
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(ACCURACY_METRICS))]
        bars = ax.bar(
            xs,
            [_pct(c.mean) for c in cells],
            width,
            yerr=[_pct_err(c) for c in cells],
            capsize=3,
            color=colours[group],
            label=f"{group} (n={runs_per_group[group]})",
        )
        ax.bar_label(
            bars, labels=[("" if c.mean is None else f"{100 * c.mean:.1f}") for c in cells], fontsize=7
        )
    ax.set_xticks(range(len(ACCURACY_METRICS)), [label for _, label in ACCURACY_METRICS])
    ax.set_ylabel("accuracy (%), strict extraction")
    ax.set_ylim(0, 105)
    ax.set_title("Accuracy by split (mean over seeds, 95% t-interval)")
    ax.legend(fontsize=8)
    return fig


def _band_plot(ax: Any, curve: Curve, colour: Any, label: str) -> None:
    ax.plot(curve.steps, curve.mean, color=colour, label=label)
    if curve.n > 1:
        ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, linewidth=0)


def _curves_figure(runs: list[Run], colours: Mapping[str, Any]) -> Any:
    curves = {g: mean_curve([r.log for r in m], "loss") for g, m in by_group(main_runs(runs)).items()}
    curves = {g: c for g, c in curves.items() if c.steps}
    if not curves:
        return 'no main-comparison log.jsonl has "loss" at steps shared by its seeds'
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for group, curve in curves.items():
        _band_plot(ax, curve, colours[group], f"{group} (n={curve.n})")
    if all(v > 0 for c in curves.values() for v in c.low):
        from matplotlib.ticker import LogFormatter

        class PlainLogFormatter(LogFormatter):
            # LogFormatter's choice of labelled ticks, printed "0.6" rather than "6×10⁻¹" or "6e-01"
            def __call__(self, x: float, pos: int | None = None) -> str:
                return f"{x:g}" if super().__call__(x, pos) else ""

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PlainLogFormatter())
        ax.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean over domains)")
    ax.set_title("Training loss (mean over seeds, band = min–max)")
    ax.legend(fontsize=8)
    return fig


def _mask_figure(runs: list[Run], colours: Mapping[str, Any]) -> Any:
    groups = {g: m for g, m in by_group(runs).items() if any("mask_mean" in row for r in m for row in r.log)}
    if not groups:
        return 'no log.jsonl has "mask_mean" (no IGA or masking run)'
    panels = [
        (k, title)
        for k, title in MASK_KEYS
        if any(k in row for m in groups.values() for r in m for row in r.log)
    ]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for group, members in groups.items():
            curve = mean_curve([r.log for r in members], key)
            if curve.steps:
                _band_plot(ax, curve, colours[group], f"{group} (n={curve.n})")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        if key != "vhat_mean":
            ax.set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("IGA mask statistics over training (mean over seeds, band = min–max)", fontsize=11)
    return fig


def _lcs_figure(runs: list[Run], colours: Mapping[str, Any]) -> Any:
    table, baseline = lcs_per_layer(runs)
    if not table:
        return "no main-comparison run has eval.lcs.per_layer"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for group, cells in table.items():
        layers = list(cells)
        n = max(c.n for c in cells.values())
        ax.errorbar(
            layers,
            [c.mean for c in cells.values()],
            yerr=[math.nan if c.half_width is None else c.half_width for c in cells.values()],
            color=colours[group],
            marker="o",
            capsize=3,
            label=f"{group} (n={n})",
        )
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=f"permutation baseline ({baseline:.3f})")
    all_layers = sorted({layer for cells in table.values() for layer in cells})
    if len(all_layers) <= 16:
        ax.set_xticks(all_layers)
    else:  # a deep student: let matplotlib thin the integer ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("LCS (lower = more consistent)")
    ax.set_title("Latent consistency per layer (mean over seeds, 95% t-interval)")
    ax.legend(fontsize=8)
    return fig


def _ablation_figure(runs: list[Run], colours: Mapping[str, Any]) -> Any:
    series = ablation_series(runs)
    if not series:
        return 'no job has an "ablation"'
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(4.4 * len(series), 3.8), squeeze=False)
    styles = {"ood_accuracy": ("OOD-surface", "o", "-"), "id_accuracy": ("ID", "s", "--")}
    for ax, (name, points) in zip(axes[0], series.items(), strict=True):
        xs = list(range(len(points)))
        for key, (label, marker, linestyle) in styles.items():
            cells = [p.metrics[key] for p in points]
            ax.errorbar(
                xs,
                [_pct(c.mean) for c in cells],
                yerr=[_pct_err(c) for c in cells],
                marker=marker,
                linestyle=linestyle,
                capsize=3,
                label=label,
            )
        # the baseline point names its group, so "10 (iga, n=3)" reads as the main run, not an ablation job
        ticks = [f"{p.label}\n({p.groups[0] + ', ' if p.baseline else ''}n={p.n_runs})" for p in points]
        ax.set_xticks(xs, ticks, fontsize=8)
        ax.set_xlim(-0.5, len(points) - 0.5)
        ax.set_ylim(0, 105)
        ax.set_xlabel(name)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Ablation: {name}", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Ablations (mean over seeds, 95% t-interval)", fontsize=11)
    return fig


_BUILDERS: dict[str, Callable[[list[Run], Mapping[str, Any]], Any]] = {
    "accuracy": _accuracy_figure,
    "curves": _curves_figure,
    "mask": _mask_figure,
    "lcs_layers": _lcs_figure,
    "ablations": _ablation_figure,
}


def _normalise_formats(formats: Sequence[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for fmt in formats:
        f = str(fmt).lower().lstrip(".")
        if f not in SUPPORTED_FORMATS:
            raise ValueError(f"format must be one of {', '.join(SUPPORTED_FORMATS)}, got {fmt!r}")
        if f not in out:
            out.append(f)
    if not out:
        raise ValueError("at least one format is needed")
    return out


def _save(fig: Any, path: Path, fmt: str) -> Path:
    # Render into memory, then publish atomically: a reader never sees half an image.
    buffer = io.BytesIO()
    if fmt == "png":
        fig.savefig(buffer, format="png", dpi=PNG_DPI)
    else:
        # No creation date in SVG/PDF, so rerunning on the same sweep gives the same bytes.
        fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else {"CreationDate": None})
    return atomic_write_bytes(path, buffer.getvalue())


def render_sweep_plots(
    sweep_dir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> SweepPlots:
    """Write every figure that has something to show; report the others in ``skipped`` (name → reason)."""
    fmts = _normalise_formats(formats)
    runs = select_by_validation(load_runs(sweep_dir))
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "plots"
    colours = _colours(list(by_group(runs)))
    plt = _pyplot()
    report = SweepPlots()
    # svg.fonttype "none" keeps labels as text (editable in a paper, searchable); a fixed salt fixes the SVG ids.
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "iga-sweep-plots"}):
        for name in FIGURES:
            fig = _BUILDERS[name](runs, colours)
            if isinstance(fig, str):
                report.skipped[name] = fig
                logger.info("skipped %s: %s", name, fig)
                continue
            try:
                fig.tight_layout()
                report.written += [_save(fig, out / f"{name}.{fmt}", fmt) for fmt in fmts]
            finally:
                plt.close(fig)
    return report


def plot_sweep(
    sweep_dir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Write the sweep's figures (``accuracy``, ``curves``, ``mask``, ``lcs_layers``, ``ablations``) into
    ``out_dir`` (default ``sweep_dir/plots``), each in every format; returns the written paths.

    Figures with nothing to show are skipped and logged (see :func:`render_sweep_plots` for the reasons).
    """
    return render_sweep_plots(sweep_dir, out_dir=out_dir, formats=formats).written
