"""Command-line interface (``iga``).

Sub-commands live in :mod:`iga.commands`; each module keeps its heavy imports (torch, transformers) inside the
command functions so that ``iga --help`` and ``iga data ...`` start fast.
"""

from __future__ import annotations

import os
import warnings

import typer

# Offline by design: no command may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Library chatter that says nothing about the user's run (per-file load bars, deprecations inside PEFT).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

from iga.commands import algorithms as _algorithms  # noqa: E402
from iga.commands import collect as _collect  # noqa: E402
from iga.commands import data as _data  # noqa: E402
from iga.commands import demo as _demo  # noqa: E402
from iga.commands import external as _external  # noqa: E402
from iga.commands import plot as _plot  # noqa: E402
from iga.commands import pretrain as _pretrain  # noqa: E402
from iga.commands import sweep as _sweep  # noqa: E402
from iga.commands import teach as _teach  # noqa: E402
from iga.commands import train as _train  # noqa: E402

app = typer.Typer(
    help="Invariant Gradient Alignment: robust chain-of-thought distillation on LoRA students.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
_data.app.registered_commands += _external.data_app.registered_commands
app.add_typer(_data.app, name="data")
app.registered_groups += _algorithms.app.registered_groups
for _group in (_collect, _demo, _external, _plot, _pretrain, _sweep, _teach, _train):
    app.registered_commands += _group.app.registered_commands


@app.command()
def version() -> None:
    """Print the package version."""
    from iga import __version__

    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry point
    app()
