"""``iga eval-external`` (reasoning-gym tasks, imported files) and ``iga data import`` (public files, isomer sets).

Two typer apps, wired by ``iga.cli``: ``app`` holds ``eval-external`` (a top-level command) and ``data_app`` holds
``import`` (a ``data`` sub-command). Heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from iga.commands._common import user_errors

app = typer.Typer()
data_app = typer.Typer()


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


def _load(run: Path | None, student: str | None) -> tuple[Any, Any, str | None]:
    """``(model, tokenizer, prompt format the run was trained with, if recorded)``."""
    if (run is None) == (student is None):
        raise ValueError("give exactly one of --run DIR (a trained run) or --student NAME_OR_PATH")
    if run is not None:
        from iga.runs.evaluate import inference_copy, load_run
        from iga.runs.folder import RunFolder

        _, model, tokenizer = load_run(run)
        trained = json.loads(RunFolder(run).config.read_text()).get("prompt_format")
        return inference_copy(model), tokenizer, trained
    from iga.models.pretrain import load_base
    from iga.models.resolve import resolve_student

    model, tokenizer = load_base(resolve_student(str(student), log=_echo_err))
    model.eval()
    return model, tokenizer, None


def _print_table(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="accuracy = share with full credit; mean = mean score (reasoning-gym's, partial credit)"
    )
    table.add_column("task", no_wrap=True)
    for col in ("n", "strict", "flexible", "mean", "no answer", "gen s"):
        table.add_column(col, justify="right")
    for r in results:
        s, f = r["strict"], r["flexible"]
        table.add_row(
            r["task"].removeprefix("reasoning_gym:"),
            str(r["n"]),
            f"{s['accuracy']:.3f}",
            f"{f['accuracy']:.3f}",
            f"{s['mean_score']:.3f}",
            f"{s['extraction_failures']}/{f['extraction_failures']}",
            f"{r['generation_seconds']:.0f}",
        )
    Console().print(table)


@app.command("eval-external")
@user_errors
def eval_external(
    task: list[str] | None = typer.Option(
        None,
        "--task",
        help="reasoning_gym:TASK (repeatable); TASK one of gsm_symbolic, basic_arithmetic, syllogism, "
        "propositional_logic, family_relationships.",
    ),
    records: list[Path] | None = typer.Option(
        None, "--records", help="A JSONL of imported records (`iga data import`), scored by our extraction."
    ),
    run: Path | None = typer.Option(None, "--run", help="A run folder written by `iga train`."),
    student: str | None = typer.Option(
        None, "--student", help="A preset (smollm2-135m, gemma3-270m) or a local HF checkpoint folder."
    ),
    n: int = typer.Option(50, "--n", help="Items per reasoning-gym task."),
    seed: int = typer.Option(0, "--seed", help="reasoning-gym seed (same seed, same items)."),
    prompt_format: str = typer.Option("auto", "--format", help="auto | plain | chat."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    batch_size: int = typer.Option(8, "--batch-size"),
    out: Path | None = typer.Option(
        None, "--out", help="Write every item (completion, extraction, score) to this JSON file."
    ),
) -> None:
    """Evaluate a run or a student on reasoning-gym tasks and imported files; --run merges into result.json."""
    from iga.external.evaluate import evaluate_file
    from iga.external.reasoning_gym import evaluate_task, get_task
    from iga.models.chat import make_prompt_format
    from iga.utils.io import atomic_write_json, atomic_write_jsonl

    if not task and not records:
        raise ValueError("give at least one --task reasoning_gym:TASK or --records FILE.jsonl")
    for spec in task or []:
        get_task(spec)  # fail on a bad task before loading a model
    for path in records or []:
        if not path.is_file():
            raise FileNotFoundError(f"--records: no such file: {path}")
    model, tokenizer, trained = _load(run, student)
    fmt = make_prompt_format(prompt_format, tokenizer, trained=trained)
    common = {"fmt": fmt, "max_new_tokens": max_new_tokens, "batch_size": batch_size}
    results = [evaluate_task(model, tokenizer, spec, n=n, seed=seed, **common) for spec in task or []]
    results += [evaluate_file(model, tokenizer, path, **common) for path in records or []]
    fmt_name = type(fmt).__name__
    _print_table(results)
    if out is not None:
        atomic_write_json(out, {"prompt_format": fmt_name, "results": results})
    if run is not None:
        from iga.runs.folder import RunFolder

        folder = RunFolder(run)
        external = dict(folder.read_result().get("external", {}))
        for r in results:
            name = r["task"].split(":", 1)[1].removesuffix(".jsonl")
            atomic_write_jsonl(folder.external_items(name), r["items"])
            external[r["task"]] = {k: v for k, v in r.items() if k != "items"} | {"prompt_format": fmt_name}
        folder.update_result(external=external)


@data_app.command("import")
@user_errors
def import_data(
    fmt: str = typer.Option(
        ...,
        "--format",
        help="gsm8k | prontoqa | folio | clutrr (a FILE you have), or "
        "reasoning_gym:basic_arithmetic (isomer sets, no FILE).",
    ),
    file: Path | None = typer.Argument(None, help="The public file to read (not for reasoning_gym:...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output JSONL."),
    split: str | None = typer.Option(None, "--split", help="Split to stamp on every record."),
    n: int = typer.Option(100, "--n", help="reasoning_gym imports: isomer sets to build."),
    seed: int = typer.Option(0, "--seed", help="reasoning_gym imports: seed."),
    domains: str | None = typer.Option(
        None,
        "--domains",
        help="reasoning_gym imports: comma-separated domains (default: training + held-out).",
    ),
) -> None:
    """Convert a public benchmark file (or reasoning-gym instances) into our JSONL records."""
    from iga.utils.io import atomic_write_jsonl

    if fmt.startswith("reasoning_gym:"):
        from iga.external.rg_isomers import import_isomer_sets

        if file is not None:
            raise ValueError(f"--format {fmt} builds isomer sets from reasoning-gym; it takes no FILE")
        kwargs: dict[str, Any] = {"split": split or "id_test"}
        if domains:
            kwargs["domains"] = [d.strip() for d in domains.split(",") if d.strip()]
        records = import_isomer_sets(fmt, n, seed, **kwargs)
        kind = f"{len({r['instance_id'] for r in records})} isomer sets"
    else:
        from iga.external.loaders import load_external

        if file is None:
            raise ValueError(
                f"--format {fmt} reads a file: give its path, e.g. `iga data import --format {fmt} "
                "FILE --out OUT.jsonl`"
            )
        records = load_external(fmt, file, split=split)
        kind = "single-domain evaluation records"
    atomic_write_jsonl(out, records)
    typer.echo(f"wrote {len(records)} records ({kind}) to {out}")
