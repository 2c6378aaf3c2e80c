"""``iga algorithms list`` / ``iga algorithms show NAME``: the training methods and their hyper-parameters.

Wired into the CLI as a sub-group: ``app`` holds the ``algorithms`` group (``cli.app.registered_groups +=
algorithms.app.registered_groups``). torch is imported inside the commands only.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Annotated, Any

import typer

from iga.commands._common import user_errors

app = typer.Typer()
algorithms_app = typer.Typer(
    help="List the training methods (ERM, IGA, baselines) and show their hyper-parameters.",
    no_args_is_help=True,
)
app.add_typer(algorithms_app, name="algorithms")


def _paragraphs(cls: type) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    # Docstrings are reStructuredText; the terminal gets ``x`` and :role:`x` as plain x.
    doc = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc).replace("``", "")
    return [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]


def _headline(summary: str) -> str:
    """The method's name phrase: the summary up to its first colon or full stop."""
    return re.split(r":\s|\.\s", summary, maxsplit=1)[0]


def describe(
    name: str, *, benchmark: str | None = None, hparams_seed: int | None = None, trial_seed: int = 0
) -> dict[str, Any]:
    """What ``show`` prints, as plain data: summary, gradients, trainer call, deviations, hyper-parameters (default,
    search range and, given ``hparams_seed``, the value that DomainBed's sweep convention draws)."""
    from iga.algorithms import get_algorithm
    from iga.algorithms.hparams import default_hparams, search_space, sweep_hparams

    cls = get_algorithm(name)
    paragraphs = _paragraphs(cls)
    drawn = None
    if hparams_seed is not None:
        if benchmark is None:
            raise ValueError(
                "--hparams-seed needs --benchmark (the draw is seeded by the benchmark name too)"
            )
        drawn = sweep_hparams(name, benchmark=benchmark, hparams_seed=hparams_seed, trial_seed=trial_seed)
    space = search_space(name)
    choices = getattr(cls.hparams_cls, "CHOICES", {})  # the options that take one of a few values
    hparams = []
    for key, default in default_hparams(name).items():
        row: dict[str, Any] = {
            "name": key,
            "default": default,
            "search": space[key].description if key in space else None,
            "choices": list(choices[key]) if key in choices else None,
        }
        if drawn is not None:
            row["value"] = drawn[key]
        hparams.append(row)
    return {
        "name": name,
        "summary": paragraphs[0] if paragraphs else "",
        "gradients": cls.capture_space or "none",
        "trainer_call": cls.trainer_call,
        "deviations": next((p for p in paragraphs if p.startswith("Deviations")), None),
        "hyper_parameters": hparams,
    }


@algorithms_app.command("list")
@user_errors
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """One line per registered method: per-domain gradients it needs, how the trainer calls it, searched options."""
    from rich.console import Console
    from rich.table import Table

    from iga.algorithms import list_algorithms

    rows = [describe(name) for name in list_algorithms()]
    if as_json:
        typer.echo(
            json.dumps(
                [{k: r[k] for k in ("name", "gradients", "trainer_call", "summary")} for r in rows], indent=2
            )
        )
        return
    table = Table("name", "gradients", "trainer call", "searched", "summary")
    for r in rows:
        searched = ", ".join(
            h["name"] for h in r["hyper_parameters"] if h["search"] and not h["search"].startswith("fixed")
        )
        table.add_row(r["name"], r["gradients"], r["trainer_call"], searched or "-", _headline(r["summary"]))
    Console().print(table)


@algorithms_app.command("show")
@user_errors
def show(
    name: Annotated[str, typer.Argument(help="Registered algorithm name (see `iga algorithms list`).")],
    benchmark: Annotated[str | None, typer.Option(help="Benchmark name that seeds the random draw.")] = None,
    hparams_seed: Annotated[
        int | None, typer.Option(help="Also show the sweep's draw for this seed (0 = the defaults).")
    ] = None,
    trial_seed: Annotated[int, typer.Option(help="Trial seed of the draw.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """A method's description, its deviations from the public reference, and its hyper-parameters."""
    from rich.console import Console
    from rich.table import Table

    info = describe(name, benchmark=benchmark, hparams_seed=hparams_seed, trial_seed=trial_seed)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=repr))
        return
    console = Console()
    console.print(f"[bold]{info['name']}[/bold]: {info['summary']}", highlight=False)
    console.print(
        f"per-domain gradients: {info['gradients']}; trainer call: {info['trainer_call']}", highlight=False
    )
    if info["deviations"]:
        console.print(info["deviations"], highlight=False)
    if not info["hyper_parameters"]:
        console.print("no hyper-parameters")
        return
    with_choices = any(h["choices"] for h in info["hyper_parameters"])
    columns = ["name", "default", *(["choices"] if with_choices else []), "random search"]
    table = Table(*columns, *(["value"] if hparams_seed is not None else []))
    for h in info["hyper_parameters"]:
        allowed = [" | ".join(map(str, h["choices"])) if h["choices"] else ""] if with_choices else []
        cells = [h["name"], repr(h["default"]), *allowed, h["search"] or "not searched"]
        if hparams_seed is not None:
            cells.append(repr(h["value"]))
        table.add_row(*cells)
    console.print(table)
