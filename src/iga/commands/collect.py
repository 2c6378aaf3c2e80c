"""``iga collect DIR``: DomainBed-style result tables from a sweep folder (see :mod:`iga.sweeps.collect`)."""

from __future__ import annotations

from pathlib import Path

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("collect")
@user_errors
def collect_cmd(
    sweep_dir: Path = typer.Argument(
        ..., help="Sweep folder (jobs/*/job.json) or a folder of run folders with result.json (runs/demo)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Where results.{md,tex,csv} and summary.json go (default: DIR; DIR/collect for runs).",
    ),
    formats: list[str] | None = typer.Option(
        None,
        "--format",
        "-f",
        help="md, tex or csv (repeatable; default all three). summary.json is always written.",
    ),
    ablation: list[str] | None = typer.Option(
        None, "--ablation", help="Only this ablation family's table (repeatable; default every ablation)."
    ),
    select: str = typer.Option(
        "val",
        "--select",
        help="Model-selection split: val (in-domain validation, with the training domains' shortcut cues), "
        "val_nocue (the same instances without cues; jobs must have evaluated it), lodo (leave one training "
        "domain out; a sweep with lodo: true) or test (the oracle: held-out accuracy picks the draw; labelled "
        "as such).",
    ),
) -> None:
    """Mean ± 95% CI over seeds per group and benchmark family, model selection by in-domain validation."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from iga.sweeps.collect import FORMATS, collect
    from iga.sweeps.sweep_results import selection_line

    result = collect(
        sweep_dir, out_dir=out, formats=tuple(formats or FORMATS), ablation=ablation or None, select=select
    )
    console, errors = Console(), Console(stderr=True)
    console.print(
        f"[bold]{escape(result.markdown.splitlines()[0].lstrip('# '))}[/]  ({selection_line(select)})"
    )
    for table in result.tables:
        shown = Table(title=table.title)
        for i, column in enumerate(table.columns):
            shown.add_column(column, justify="left" if i == 0 else "right")
        for row in table.rows:
            shown.add_row(*(Text(cell) for cell in row))
        console.print(shown)
        for note in table.notes:
            console.print(Text(note, style="dim"))
    console.print(
        f"jobs: {result.n_finished} finished ({len(result.selected)} kept after model selection), "
        f"{result.n_unfinished} unfinished (not used)"
    )
    console.print(Text("wrote " + ", ".join(str(p) for p in result.written)))
    for line in [*result.notes, *result.warnings]:
        errors.print(Text(f"warning: {line}", style="yellow"))
