"""``iga data ...``: build, check, show and list IsoBench data (placeholder until the generator lands)."""

import typer

app = typer.Typer(help="Build, validate and inspect Logical Isomer Sets.", no_args_is_help=True)


@app.command()
def domains() -> None:
    """List the available domains."""
    typer.echo("no domains yet")
