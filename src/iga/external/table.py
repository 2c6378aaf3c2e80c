"""Side-by-side table of ``iga eval-external --out`` files: one column per evaluated model.

``python -m iga.external.table base=runs/x/base.json erm=runs/x/erm.json [--mode strict|flexible]`` prints a
Markdown table per task — the majority-answer rate (a constant guess; "–" where reasoning-gym has no single gold,
e.g. propositional_logic), then per model the accuracy %, its 95% Wilson interval and reasoning-gym's mean score —
so results pages quote the files instead of retyping numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (sensible at 0/n and n/n, unlike the normal one).

    >>> [round(x, 3) for x in wilson(0, 50)]
    [0.0, 0.071]
    """
    if n <= 0:
        raise ValueError("n must be positive")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_results(path: str | Path) -> dict[str, dict]:
    """``{task: result}`` of one ``--out`` file; a clear error for anything else."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {r["task"]: r for r in data["results"]}
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no such file (write it with `iga eval-external ... --out {path}`)"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an `iga eval-external --out` file ({exc})") from None


def majority_rate(result: dict | None) -> float | None:
    """Share of the most frequent gold answer (what a constant guess scores); None without items or golds."""
    from collections import Counter

    golds = [str(i["gold"]) for i in (result or {}).get("items", []) if i.get("gold") is not None]
    return Counter(golds).most_common(1)[0][1] / len(golds) if golds else None


def render_table(columns: dict[str, dict[str, dict]], *, mode: str = "strict") -> str:
    """Markdown: one row per task (in first-seen order), one column per model."""
    if mode not in ("strict", "flexible"):
        raise ValueError(f"mode: unknown {mode!r}; allowed: strict, flexible")
    tasks = list(dict.fromkeys(t for results in columns.values() for t in results))
    head = (
        "| task | n | majority answer % | "
        + " | ".join(f"{name}: acc % [95% CI] (mean score)" for name in columns)
        + " |"
    )
    lines = [head, "| --- | ---: | ---: |" + " ---: |" * len(columns)]
    for task in tasks:
        ns = {results[task]["n"] for results in columns.values() if task in results}
        cells = []
        for results in columns.values():
            r = results.get(task)
            if r is None:
                cells.append("–")
                continue
            acc, n = r[mode]["accuracy"], r["n"]
            lo, hi = wilson(round(acc * n), n)
            cells.append(f"{100 * acc:.0f} [{100 * lo:.0f}, {100 * hi:.0f}] ({r[mode]['mean_score']:.3f})")
        majority = next(
            (m for results in columns.values() if (m := majority_rate(results.get(task))) is not None), None
        )
        lines.append(
            f"| {task.split(':', 1)[-1]} | {'/'.join(map(str, sorted(ns)))} | "
            + ("–" if majority is None else f"{100 * majority:.0f}")
            + " | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m iga.external.table", description=__doc__.split("\n")[0])
    ap.add_argument("columns", nargs="+", help="NAME=FILE, one per model, in column order")
    ap.add_argument("--mode", default="strict", choices=["strict", "flexible"])
    a = ap.parse_args(argv)
    columns = {}
    for spec in a.columns:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            ap.error(f"column {spec!r}: expected NAME=FILE")
        columns[name] = load_results(file)
    print(render_table(columns, mode=a.mode), end="")


if __name__ == "__main__":
    main()
