"""``iga teach``: a teacher writes the CoT of every training problem; the result is a distillation data folder."""

from __future__ import annotations

from pathlib import Path

import typer

from iga.commands._common import user_errors

app = typer.Typer()

SYMBOLIC = "symbolic"


@app.command("teach")
@user_errors
def teach_cmd(
    data: Path = typer.Option(..., "--data", help="Source data folder (<split>.jsonl files, manifest.json)."),
    out: Path = typer.Option(
        ..., "--out", help="New folder for the distillation dataset (a data dir for `iga train`)."
    ),
    teacher: str = typer.Option(
        SYMBOLIC, "--teacher", help="'symbolic' (gold CoT) or a local HF causal-LM folder."
    ),
    split: str = typer.Option(
        "train", "--split", help="Split the teacher writes CoTs for; others are copied."
    ),
    samples: int | None = typer.Option(
        None, "--samples", help="Samples per problem (HF teacher; default 1)."
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="Sampling temperature (HF teacher; default 0 = greedy; > 0 needed for samples > 1).",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Prompts per generate() call (HF; default 16)."
    ),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="CoT length limit (HF; default 256)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling generator (HF teacher)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the files of a non-empty --out folder."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow custom model code (HF)."
    ),
) -> None:
    """Write <out>/<split>.jsonl (records + teacher_cot, cot_source), the other splits unchanged, manifest.json."""
    from iga.teachers.dataset import distill

    hf_options = {
        "samples": samples,
        "temperature": temperature,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
    }
    given = {k: v for k, v in hf_options.items() if v is not None}
    if teacher == SYMBOLIC:
        if given:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            raise ValueError(
                f"{flags}: only apply to a model teacher (--teacher PATH), not to --teacher symbolic"
            )
        from iga.teachers.symbolic import SymbolicTeacher

        chosen = SymbolicTeacher()
    else:
        if not Path(teacher).is_dir():
            raise ValueError(f"--teacher: {teacher!r} is neither 'symbolic' nor an existing model folder")
        from iga.teachers.hf import HFTeacher, SamplingConfig

        chosen = HFTeacher.load(
            teacher, sampling=SamplingConfig(seed=seed, **given), trust_remote_code=trust_remote_code
        )
    manifest = distill(data, out, chosen, split=split, overwrite=overwrite)
    _print_summary(out, manifest)


def _print_summary(out: Path, manifest: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    counts = manifest["counts"]
    table = Table(title=f"{manifest['split']} split taught by {manifest['teacher'].get('path', SYMBOLIC)}")
    for col in ("domain", "records", "rejected", "dropped", "written"):
        table.add_column(col, justify="right")
    for domain, c in counts["by_domain"].items():
        table.add_row(
            domain,
            str(c["records"]),
            str(c["records_rejected"]),
            str(c["records_dropped"]),
            str(c["records"] - c["records_dropped"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"acceptance {100 * (counts['acceptance_rate'] or 0):.1f}% of problems "
        f"({counts['samples_correct']}/{counts['samples']} samples correct); "
        f"isomer sets kept {counts['sets_kept']}/{counts['sets']}; wrote {out}"
    )
    if counts["sets_kept"] == 0:
        console.print(
            "[bold yellow]warning:[/] no isomer set survived, so this folder cannot be used for training"
        )
