"""Command-line interface (``iga``).

Sub-commands live in :mod:`iga.commands`; each module keeps its heavy imports (torch, transformers) inside the
command functions so that ``iga --help`` and ``iga data ...`` start fast.
"""

from __future__ import annotations

import os

import typer

# Offline by design: no command may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from iga.commands import data as _data  # noqa: E402

app = typer.Typer(
    help="Invariant Gradient Alignment: robust chain-of-thought distillation on LoRA students.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(_data.app, name="data")


@app.command()
def version() -> None:
    """Print the package version."""
    from iga import __version__

    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry point
    app()
