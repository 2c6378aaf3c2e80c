"""Text of :mod:`iga.sweeps.collect`: a statistic as a table cell (:func:`format_cell`, the "†" warning
line), and a :class:`ResultTable` (text cells) printed as Markdown, LaTeX (booktabs) or CSV. Nothing here
computes a number; everything here formats, escapes or lays out.

Example::

    >>> t = ResultTable("Overall", ["Group", "OOD acc %"], [["iga_v2", "30.0 ± 1.2"]], notes=["n = 3 seeds"])
    >>> print(render_markdown([t], ["model selection: val"], "Results"), end="")
    # Results
    <BLANKLINE>
    model selection: val
    <BLANKLINE>
    ## Overall
    <BLANKLINE>
    | Group | OOD acc % |
    |:---|---:|
    | iga_v2 | 30.0 ± 1.2 |
    <BLANKLINE>
    n = 3 seeds
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iga.sweeps.sweep_results import MeanCI

#: Below this many seeds a CI is too wide to read (or absent): the cell is marked and listed in a warning.
MIN_SEEDS = 3
DAGGER = "†"
DASH = "–"


# ------------------------------------------------------------------------------------------------------------
# Cells
# ------------------------------------------------------------------------------------------------------------


def format_number(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals, never "-0.0" (a cell that rounds to zero has no sign)."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_cell(stat: MeanCI, *, scale: float = 100.0, digits: int = 1) -> str:
    """``"30.0 ± 24.8"``, ``"30.0 (n=1)†"``, or ``"–"``; "†" marks fewer than :data:`MIN_SEEDS` seeds.

    >>> format_cell(MeanCI(0.3, 0.2484, 3)), format_cell(MeanCI(0.25, None, 1))
    ('30.0 ± 24.8', '25.0 (n=1)†')
    >>> format_cell(MeanCI(None, None, 0)), format_cell(MeanCI(-0.0004, None, 1), scale=1.0, digits=3)
    ('–', '0.000 (n=1)†')
    """
    if stat.mean is None:
        return DASH
    text = format_number(scale * stat.mean, digits)
    text += " (n=1)" if stat.ci95 is None else f" ± {format_number(scale * stat.ci95, digits)}"
    return text + (DAGGER if stat.n < MIN_SEEDS else "")


class FewSeedCells:
    """Collects the "†" cells of one table and phrases them as one warning line."""

    def __init__(self) -> None:
        self.cells: dict[str, list[tuple[str, int]]] = {}
        self.filled: dict[str, int] = {}

    def cell(self, label: str, column: str, stat: MeanCI, **fmt: Any) -> str:
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


# ------------------------------------------------------------------------------------------------------------
# Tables as Markdown, LaTeX, CSV
# ------------------------------------------------------------------------------------------------------------


@dataclass
class ResultTable:
    """One rendered-agnostic table: text cells (already formatted), notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    #: "† fewer than 3 seeds: ..." or "" when every cell has at least 3 seeds.
    warning: str = ""
    notes: list[str] = field(default_factory=list)


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


#: One CSV row per group × family × metric (see :func:`iga.sweeps.collect_aggregate.csv_rows`).
CSV_COLUMNS = ("group", "family", "metric", "mean", "ci95", "n")


def _csv_value(value: Any) -> Any:
    # repr() keeps every digit of a float (the CSV is for machines); None becomes an empty field.
    return "" if value is None else repr(value) if isinstance(value, float) else value


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (dicts with the keys of :data:`CSV_COLUMNS`) as CSV text with a header line.

    >>> row = {"group": "erm", "family": "overall", "metric": "gap", "mean": 0.1, "ci95": None, "n": 1}
    >>> print(render_csv([row]))
    group,family,metric,mean,ci95,n
    erm,overall,gap,0.1,,1
    <BLANKLINE>
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row[k]) for k in CSV_COLUMNS})
    return buf.getvalue()
