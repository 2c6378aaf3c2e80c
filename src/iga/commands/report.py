"""Rich tables printed by the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def print_run_summary(run_dir: Any, result: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ev = result.get("eval") or {}
    summary = ev.get("summary") or {}
    table = Table(title=f"run {run_dir}")
    for col in ("algorithm", "ID acc %", "OOD-surface acc %", "OOD-depth acc %", "LCS", "step time s"):
        table.add_column(col, justify="right")
    lcs = (ev.get("lcs") or {}).get("canonical")
    table.add_row(
        str(result.get("config", {}).get("algorithm")),
        _pct(summary.get("id_accuracy")),
        _pct(summary.get("ood_accuracy")),
        _pct(summary.get("ood_depth_accuracy")),
        "–" if lcs is None else f"{lcs:.3f}",
        str(result.get("train", {}).get("step_time_s")),
    )
    Console().print(table)
