"""``iga demo``: the embedded benchmark end to end (see :mod:`iga.experiments.demo`)."""

from __future__ import annotations

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("demo")
@user_errors
def demo_cmd(
    out: str = typer.Option(
        "runs/demo", "--out", help="Folder for data, runs, report.md, summary.json, demo.png."
    ),
    seed: int = typer.Option(0, "--seed"),
    steps: int = typer.Option(
        None, "--steps", help="Training steps per method (default: the regime's demo config)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Seconds-long smoke version (a 3-step base, tiny data, a few steps)."
    ),
    regime: str = typer.Option(
        "micro",
        "--regime",
        help="micro (M01-M04, the word-level student and its shipped skill base; docs/student-recipes.md) or "
        "standard (S01-S11 on a BPE student that does not learn them).",
    ),
) -> None:
    """Build IsoBench, get the base (cached), train ERM-SFT, IGA and the oracle, evaluate and compare."""
    from rich.console import Console
    from rich.table import Table

    from iga.experiments.demo import (
        demo_config,
        micro_demo_config,
        quick_demo_config,
        quick_standard_demo_config,
        run_demo,
    )

    console = Console()
    overrides = {"seed": seed, **({"steps": steps} if steps else {})}
    if quick:
        cfg = (quick_demo_config if regime == "micro" else quick_standard_demo_config)(out, **overrides)
    elif regime == "micro":
        cfg = micro_demo_config(out_dir=out, **overrides)
    else:
        cfg = demo_config(out_dir=out, **overrides)
    payload = run_demo(cfg, say=lambda msg: console.print(f"[bold cyan]demo[/] {msg}"))
    table = Table(title=f"ERM-SFT vs IGA on IsoBench-{cfg.preset}, {cfg.regime} regime (seed {cfg.seed})")
    for col in ("method", "ID acc %", "OOD-surface acc %", "OOD-depth acc %", "LCS ↓", "step time s"):
        table.add_column(col, justify="right")
    for method, s in payload["methods"].items():
        table.add_row(
            method,
            *(
                ("–" if s[k] is None else f"{100 * s[k]:.1f}")
                for k in ("id_accuracy", "ood_accuracy", "ood_depth_accuracy")
            ),
            "–" if s["lcs"] is None else f"{s['lcs']:.3f}",
            "–" if s["step_time_s"] is None else f"{s['step_time_s']:.3f}",
        )
    console.print(table)
    console.print(
        f"report: {out}/report.md   plot: {out}/demo.png   summary: {out}/summary.json   "
        f"total {payload['timings']['total_seconds']:.0f} s"
    )
