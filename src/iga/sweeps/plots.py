"""Matplotlib figures for reports (Agg backend: works headless, in CI and over SSH)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; a one-line error naming the extra when matplotlib is missing."""
    from iga.utils.extras import require

    matplotlib = require("matplotlib", extra="experiments", purpose="figures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png_and_svg(fig: Any, out: str | os.PathLike) -> Path:
    """Save ``fig`` as ``out`` (PNG, 120 dpi) and as an SVG beside it; close it; return ``out``."""
    plt = pyplot()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return out


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's ``log.jsonl`` (none when it has no log)."""
    from iga.runs.folder import RunFolder
    from iga.utils.io import read_jsonl

    path = RunFolder(run_dir).log
    return read_jsonl(path) if path.exists() else []


def comparison_figure(
    summaries: Mapping[str, Mapping],
    run_dirs: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    *,
    metrics: Sequence[tuple[str, str]] = (
        ("id_accuracy", "ID"),
        ("ood_accuracy", "OOD-surface"),
        ("ood_depth_accuracy", "OOD-depth"),
    ),
) -> Path:
    """Accuracy bars per method (left) and training loss curves (right), saved as PNG (and SVG beside it)."""
    plt = pyplot()
    fig, (ax_bar, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    methods = list(summaries)
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        values = [100 * (summaries[method].get(key) or 0.0) for key, _ in metrics]
        xs = [j + i * width for j in range(len(metrics))]
        bars = ax_bar.bar(xs, values, width, label=method)
        ax_bar.bar_label(bars, fmt="%.1f", fontsize=8)
    ax_bar.set_xticks(
        [j + width * (len(methods) - 1) / 2 for j in range(len(metrics))], [m for _, m in metrics]
    )
    ax_bar.set_ylabel("accuracy (%), strict extraction")
    ax_bar.set_ylim(0, 105)
    ax_bar.legend()
    ax_bar.set_title("Accuracy by split")
    for method, run_dir in run_dirs.items():
        rows = read_log(run_dir)
        if rows:
            ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=method)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (mean over domains)")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.set_title("Training curves")
    return save_png_and_svg(fig, out)
