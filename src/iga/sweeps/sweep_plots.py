"""Figures from a sweep folder (``iga plot DIR``): accuracy bars, shortcut reliance, loss curves, IGA mask statistics,
LCS per layer and ablation panels, each aggregated over seeds.

The folder is read, and one hyper-parameter draw per (group, seed) chosen by in-domain validation accuracy,
by :mod:`iga.sweeps.sweep_results`: the reader and model selection of the result tables of ``iga collect``
(a folder of plain run folders such as ``runs/demo`` works too, grouped by ``config.algorithm``). Only jobs
with the ``done`` marker count: a job still training or evaluating has no result.

Error bars are 95% Student-t intervals over seeds (:func:`~iga.sweeps.sweep_results.mean_ci`,
``t(0.975, n-1) · sd / √n`` with ``sd`` at ``ddof=1``); with one seed there is no interval.

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
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iga.sweeps.plots import pyplot
from iga.sweeps.sweep_aggregates import (
    ACCURACY_METRICS,
    AblationPoint,
    Curve,
    ablation_series,
    accuracies,
    accuracy_table,
    lcs_per_layer,
    main_runs,
    mean_curve,
)
from iga.sweeps.sweep_results import (
    JobRecord,
    MeanCI,
    by_group,
    cue_gain,
    load_finished,
    select_models,
)
from iga.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

#: (log key, panel title) of the IGA mask statistics; ANDMask/SAND-mask log only ``mask_mean``.
MASK_KEYS: tuple[tuple[str, str], ...] = (
    ("mask_mean", "mean mask value"),
    ("mask_below_half", "share of mask entries < 0.5"),
    ("vhat_mean", "mean V̂ (normalised cross-domain variance)"),
)
FIGURES = ("accuracy", "shortcut", "cue_vs_learning", "curves", "mask", "lcs_layers", "ablations")
SUPPORTED_FORMATS = ("png", "svg", "pdf")
PNG_DPI = 120
ABLATIONS_PER_ROW = 4


# ----------------------------------------------------------------------------------------------- figures


@dataclass
class SweepPlots:
    """What :func:`render_sweep_plots` wrote, and why each missing figure was skipped."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _colours(groups: Sequence[str]) -> dict[str, Any]:
    # One colour per group across all figures, so "iga" is the same colour in the bars and in the curves.
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return {g: cmap(i % cmap.N) for i, g in enumerate(groups)}


def _pct(x: float | None) -> float:
    return math.nan if x is None else 100 * x


def _pct_err(c: MeanCI) -> float:
    # NaN draws no error bar at all (one seed), where 0 would draw a cap claiming zero spread.
    return math.nan if c.ci95 is None else 100 * c.ci95


def _accuracy_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    table = accuracy_table(runs)
    table = {g: cells for g, cells in table.items() if any(c.n for c in cells.values())}
    if not table:
        return "no main-comparison run has an accuracy in eval.summary"
    plt = pyplot()
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


#: Shortcut-reliance panels: (title, [(eval.summary key, bar label)], y label).
SHORTCUT_PANELS = (
    (
        "Validation accuracy",
        [("val_accuracy", "cues shown"), ("val_nocue_accuracy", "cues stripped")],
        "accuracy (%)",
    ),
    (
        "Answers equal to a wrong cue's value",
        [("cue_follow", "cue shown"), ("cue_follow_nocue", "cue hidden")],
        "share of wrong-cue problems (%)",
    ),
)


def _shortcut_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    keys = [key for _, metrics, _ in SHORTCUT_PANELS for key, _ in metrics]
    table = {g: accuracies(m, keys) for g, m in by_group(main_runs(runs)).items()}
    table = {g: cells for g, cells in table.items() if cells["val_nocue_accuracy"].n}
    if not table:
        return "no main-comparison run evaluated the val_nocue split"
    plt = pyplot()
    groups = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.0 + 0.7 * len(groups)), 4.2))
    for ax, (title, metrics, ylabel) in zip(axes, SHORTCUT_PANELS, strict=True):
        width = 0.8 / len(metrics)
        for j, (key, label) in enumerate(metrics):
            cells = [table[g][key] for g in groups]
            ax.bar(
                [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(groups))],
                [_pct(c.mean) for c in cells],
                width,
                yerr=[_pct_err(c) for c in cells],
                capsize=2,
                color=[colours[g] for g in groups],
                alpha=1.0 if j == 0 else 0.45,
                hatch=None if j == 0 else "//",
                label=label,
            )
        ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 105)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(
        "Shortcut reliance (paired, same validation problems; mean over seeds, 95% t-interval)", fontsize=10
    )
    return fig


def _band_plot(ax: Any, curve: Curve, colour: Any, label: str) -> None:
    ax.plot(curve.steps, curve.mean, color=colour, label=label)
    if curve.n > 1:
        ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, linewidth=0)


def _curves_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    curves = {g: mean_curve([r.log for r in m], "loss") for g, m in by_group(main_runs(runs)).items()}
    curves = {g: c for g, c in curves.items() if c.steps}
    if not curves:
        return 'no main-comparison log.jsonl has "loss" at steps shared by its seeds'
    plt = pyplot()
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


def _mask_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    groups = {g: m for g, m in by_group(runs).items() if any("mask_mean" in row for r in m for row in r.log)}
    if not groups:
        return 'no log.jsonl has "mask_mean" (no IGA or masking run)'
    panels = [
        (k, title)
        for k, title in MASK_KEYS
        if any(k in row for m in groups.values() for r in m for row in r.log)
    ]
    plt = pyplot()
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


def _lcs_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    table, baseline = lcs_per_layer(runs)
    if not table:
        return "no main-comparison run has eval.lcs.per_layer"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for group, cells in table.items():
        layers = list(cells)
        n = max(c.n for c in cells.values())
        ax.errorbar(
            layers,
            [c.mean for c in cells.values()],
            yerr=[math.nan if c.ci95 is None else c.ci95 for c in cells.values()],
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


def _ablation_panel(
    ax: Any, points: Sequence[AblationPoint], styles: Mapping[str, tuple[str, str, str]]
) -> None:
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
    ax.legend(fontsize=8)


def _ablation_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    series = ablation_series(runs)
    if not series:
        return 'no job has an "ablation"'
    plt = pyplot()
    # A second row (cue-free validation accuracy and cue gain) when any job evaluated val_nocue.
    shortcut = any(p.metrics["cue_gain"].n for points in series.values() for p in points)
    rows = 2 if shortcut else 1
    # Wrap into bands of at most ABLATIONS_PER_ROW columns, each band `rows` panels high, so that ten ablations
    # make a readable page rather than one 50-inch strip.
    columns = min(ABLATIONS_PER_ROW, len(series))
    bands = math.ceil(len(series) / columns)
    fig, grid = plt.subplots(
        rows * bands, columns, figsize=(4.4 * columns, 3.8 * rows * bands), squeeze=False
    )
    for index in range(len(series), bands * columns):
        for row in range(rows):
            grid[(index // columns) * rows + row][index % columns].set_visible(False)
    accuracy = {"ood_accuracy": ("OOD-surface", "o", "-"), "id_accuracy": ("ID", "s", "--")}
    reliance = {
        "val_nocue_accuracy": ("val, cues stripped", "o", "-"),
        "cue_gain": ("cue gain (pts)", "^", ":"),
    }
    for index, (name, points) in enumerate(series.items()):
        band, column = divmod(index, columns)
        ax = grid[band * rows][column]
        _ablation_panel(ax, points, accuracy)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Ablation: {name}", fontsize=10)
        if shortcut:
            ax = grid[band * rows + 1][column]
            _ablation_panel(ax, points, reliance)
            ax.axhline(0, color="grey", linewidth=0.6)
            ax.set_ylabel("% / points")
            ax.set_title(f"{name}: shortcut reliance", fontsize=10)
        ax.set_xlabel(name)
    # The suptitle sits in a fixed 0.45-inch strip on top: at the default fractional position, a tall figure's
    # first band of titles runs into it.
    height = fig.get_figheight()
    fig.suptitle("Ablations (mean over seeds, 95% t-interval)", fontsize=11, y=1 - 0.08 / height, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    return fig


def _cue_vs_learning_figure(runs: list[JobRecord], colours: Mapping[str, Any]) -> Any:
    """Every run: cue-free validation accuracy (what it learned) against its cue gain (what the cues add).

    A method that reads the cues less *because* it learns less sits on the other methods' trend; one that reads
    them less at equal learning sits below it. Ablation runs are hollow markers in their algorithm's colour.
    """
    points = []
    for run in runs:
        x = run.metric("eval", "summary", "val_nocue_accuracy")
        y = cue_gain(run)
        if x is not None and y is not None:
            points.append((run, 100 * x, 100 * y))
    if not points:
        return "no run evaluated the val_nocue split"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    labelled: set[str] = set()
    for run, x, y in points:
        main = run.ablation is None
        key = run.group if main else f"{run.group.split(':', 1)[0]} ablations"
        colour = colours.get(run.group if main else run.group.split(":", 1)[0], "grey")
        ax.scatter(
            [x],
            [y],
            s=36,
            marker="o" if main else "D",
            facecolors=colour if main else "none",
            edgecolors=colour,
            label=None if key in labelled else key,
        )
        labelled.add(key)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("validation accuracy, cues stripped (%)")
    ax.set_ylabel("cue gain: with − without cues (points)")
    ax.set_title("Shortcut reliance against learning, one point per run", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return fig


_BUILDERS: dict[str, Callable[[list[JobRecord], Mapping[str, Any]], Any]] = {
    "accuracy": _accuracy_figure,
    "shortcut": _shortcut_figure,
    "cue_vs_learning": _cue_vs_learning_figure,
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
    runs, notes = select_models(load_finished(sweep_dir)[1])
    for note in notes:
        logger.info("model selection: %s", note)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "plots"
    colours = _colours(list(by_group(runs)))
    plt = pyplot()
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
    """Write the sweep's figures (``accuracy``, ``shortcut``, ``curves``, ``mask``, ``lcs_layers``, ``ablations``) into
    ``out_dir`` (default ``sweep_dir/plots``), each in every format; returns the written paths.

    Figures with nothing to show are skipped and logged (see :func:`render_sweep_plots` for the reasons).
    """
    return render_sweep_plots(sweep_dir, out_dir=out_dir, formats=formats).written
