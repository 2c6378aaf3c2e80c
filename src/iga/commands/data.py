"""``iga data ...``: build, show, list and check IsoBench data (Logical Isomer Sets).

Every user error (bad domain file, bad config, unknown split) is printed as one line and exits with code 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from iga.isomers.build import Manifest

app = typer.Typer(help="Build, validate and inspect Logical Isomer Sets.", no_args_is_help=True)

_EXIT_USER_ERROR = 2


def _fail(message: str) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}")
    return typer.Exit(_EXIT_USER_ERROR)


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created if missing).")],
    preset: Annotated[
        str | None,
        typer.Option(help="Size preset: tiny | small | default (default: the config's, else default)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed; the same seed and config give byte-identical files.")] = 0,
    domains_dir: Annotated[
        Path | None, typer.Option(help="Extra domain YAML files (merged by name).")
    ] = None,
    skeletons: Annotated[str | None, typer.Option(help="Comma-separated skeletons, e.g. S01,S06.")] = None,
    shortcuts: Annotated[
        bool | None,
        typer.Option("--shortcuts/--no-shortcuts", help="Shortcut cues on/off (default: the preset's)."),
    ] = None,
    shortcut_eval: Annotated[
        str | None, typer.Option(help="Cues in evaluation splits: none | wrong.")
    ] = None,
    train_per_skeleton: Annotated[int | None, typer.Option(help="Training instances per skeleton.")] = None,
    eval_per_skeleton: Annotated[
        int | None, typer.Option(help="Instances per skeleton in each eval split.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML/JSON config file (flags override it).")] = None,
) -> None:
    """Generate a suite: one JSONL file per split plus manifest.json."""
    from iga.isomers.build import build_suite
    from iga.isomers.errors import IsoBenchError
    from iga.isomers.presets import resolve_config

    started = time.perf_counter()
    try:
        settings = _read_config(config) if config else {}
        if preset is not None or "preset" not in settings:
            settings["preset"] = preset or "default"
        if skeletons is not None:
            settings["skeletons"] = skeletons
        for key, value in (
            ("train_per_skeleton", train_per_skeleton),
            ("eval_per_skeleton", eval_per_skeleton),
        ):
            if value is not None:
                settings[key] = value
        cue = dict(settings.get("shortcut", {}))
        if shortcuts is not None:
            cue["enabled"] = shortcuts
        if shortcut_eval is not None:
            cue["eval"] = shortcut_eval
        settings["shortcut"] = cue
        manifest = build_suite(resolve_config(settings), out, seed=seed, domains_dir=domains_dir)
    except IsoBenchError as e:
        raise _fail(str(e)) from None
    _print_summary(manifest, out, time.perf_counter() - started)


def _read_config(path: Path) -> dict:
    import yaml

    from iga.isomers.errors import ConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    return data


def _print_summary(manifest: Manifest, out: Path, seconds: float) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from iga.isomers.record import SPLITS
    from iga.isomers.skeletons import get_skeleton

    console = Console()
    table = Table(
        title=f"IsoBench suite in {out}: records (seed {manifest.seed}, preset {manifest.config['preset']})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("family / skeleton", no_wrap=True)
    for split in SPLITS:
        table.add_column(split, justify="right", no_wrap=True)
    by_family: dict[str, list[str]] = {}
    for sk_id in manifest.config["skeletons"]:
        by_family.setdefault(get_skeleton(sk_id).family, []).append(sk_id)
    for family, sk_ids in by_family.items():
        counts = {s: [manifest.splits[s]["by_skeleton"].get(sk, 0) for sk in sk_ids] for s in SPLITS}
        table.add_row(f"[bold]{family}[/bold]", *[f"[bold]{sum(counts[s])}[/bold]" for s in SPLITS])
        for i, sk_id in enumerate(sk_ids):
            table.add_row(f"  {sk_id}", *[str(counts[s][i]) for s in SPLITS])
    table.add_row(
        "[bold]all records[/bold]", *[f"[bold]{manifest.splits[s]['records']}[/bold]" for s in SPLITS]
    )
    table.add_row("isomer sets", *[str(manifest.splits[s]["instances"]) for s in SPLITS])
    console.print(table)
    roles: dict[str, list[str]] = {}
    for d in manifest.domains:
        roles.setdefault(d["role"], []).append(d["name"])
    console.print("domains: " + "; ".join(f"{role}: {', '.join(names)}" for role, names in roles.items()))
    cue = manifest.config["shortcut"]
    console.print(f"shortcut cues: {'on' if cue['enabled'] else 'off'} (eval: {cue['eval']})")
    console.print(f"content hash: {manifest.content_hash}")
    console.print(f"built in {seconds:.2f} s")


@app.command()
def show(
    directory: Annotated[Path, typer.Argument(help="A built suite directory.")],
    split: Annotated[str, typer.Option(help="Split to read.")] = "id_test",
    instance: Annotated[str | None, typer.Option(help="Instance id, e.g. S06-id_test-00003.")] = None,
    index: Annotated[
        int, typer.Option(help="Which isomer set of the split (0-based), if no --instance.")
    ] = 0,
) -> None:
    """Pretty-print one isomer set side by side (one row per domain)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from iga.isomers.record import SPLITS
    from iga.utils.io import InputError, iter_jsonl

    if split not in SPLITS:
        raise _fail(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    sets: dict[str, list[dict]] = {}
    try:
        for _, record in iter_jsonl(directory / f"{split}.jsonl"):
            sets.setdefault(record["instance_id"], []).append(record)
    except InputError as e:
        raise _fail(str(e)) from None
    if instance is not None:
        if instance not in sets:
            raise _fail(f"--instance: {instance!r} is not in {split}.jsonl")
        members = sets[instance]
    else:
        if not 0 <= index < len(sets):
            raise _fail(f"--index: {index} is out of range ({split}.jsonl has {len(sets)} isomer sets)")
        members = list(sets.values())[index]
    first = members[0]
    console = Console()
    console.print(
        f"[bold]{escape(first['instance_id'])}[/bold]  {first['skeleton']} ({first['family']}), "
        f"split {first['split']}, canonical answer [bold]{escape(first['canonical_answer'])}[/bold]"
    )
    console.print(f"difficulty: {escape(json.dumps(first['difficulty']))}")
    console.print(
        "trace: "
        + escape("; ".join(f"{s['op']}{tuple(s['args'])} -> {s['out']}" for s in first["canonical_trace"]))
    )
    table = Table(show_lines=True)
    for column in ("domain", "question", "chain of thought", "answer"):
        table.add_column(column, overflow="fold")
    for r in members:
        cue = (
            ""
            if not r["shortcut"]
            else f"\n[dim](cue {'correct' if r['shortcut']['correct'] else 'wrong'})[/dim]"
        )
        table.add_row(r["domain"], escape(r["question"]), escape(r["gold_cot"]), escape(r["answer"]) + cue)
    console.print(table)


@app.command()
def domains(
    domains_dir: Annotated[
        Path | None, typer.Option(help="Extra domain YAML files (merged by name).")
    ] = None,
) -> None:
    """List the available domains with their role and skeleton coverage."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from iga.isomers.domains import load_domains
    from iga.isomers.errors import IsoBenchError
    from iga.isomers.skeletons import list_skeletons

    try:
        loaded = load_domains(domains_dir)
    except IsoBenchError as e:
        raise _fail(str(e)) from None
    every = list_skeletons()
    table = Table(title="IsoBench domains")
    for column in ("domain", "role", "skeletons", "cue", "description", "files"):
        table.add_column(column, overflow="fold")
    for d in loaded.values():
        missing = [sk.split("_", 1)[0] for sk in every if not d.covers(sk)]
        coverage = f"{len(every) - len(missing)}/{len(every)}" + (
            f" (missing {', '.join(missing)})" if missing else ""
        )
        table.add_row(
            d.name,
            d.role,
            coverage,
            "yes" if d.shortcut_cue else "no",
            escape(d.description),
            escape("\n".join(d.files)),
        )
    Console().print(table)


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="A JSONL file of IsoBench records (yours or generated).")],
) -> None:
    """Validate a JSONL file of records; print every problem and exit 2 if there is any."""
    from rich.console import Console
    from rich.markup import escape

    from iga.isomers.check import check_file

    problems = check_file(file)
    console = Console()
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/red]")
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/bold red] in {escape(str(file))}")
        raise typer.Exit(_EXIT_USER_ERROR)
    records = sum(1 for line in file.open(encoding="utf-8") if line.strip())
    console.print(f"[green]OK[/green]: {escape(str(file))}: {records} records, no problems")
