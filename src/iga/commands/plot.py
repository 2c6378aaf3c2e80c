"""``iga plot DIR``: figures of a sweep folder (see :mod:`iga.sweeps.sweep_plots`)."""

from __future__ import annotations

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("plot")
@user_errors
def plot_cmd(
    sweep_dir: str = typer.Argument(
        ..., metavar="DIR", help="Sweep folder (jobs/*/done) or a folder of run folders."
    ),
    out: str = typer.Option(None, "--out", metavar="DIR", help="Folder for the figures (default DIR/plots)."),
    formats: list[str] = typer.Option(
        None, "--format", metavar="FMT", help="Image format, repeatable: png, svg, pdf (default png and svg)."
    ),
) -> None:
    """Accuracy bars, loss curves, IGA mask statistics, LCS per layer and ablation panels, over seeds."""
    from iga.sweeps.sweep_plots import render_sweep_plots

    report = render_sweep_plots(sweep_dir, out_dir=out, formats=formats or ("png", "svg"))
    for path in report.written:
        typer.echo(str(path))
    # Notes go to stderr so that stdout stays a plain list of paths for scripts.
    for name, reason in report.skipped.items():
        typer.echo(f"skipped {name}: {reason}", err=True)
