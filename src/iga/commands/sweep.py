"""``iga sweep SPEC --out DIR``: plan, build and launch a sweep; ``iga sweep-job DIR`` runs one of its jobs."""

from __future__ import annotations

from pathlib import Path

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("sweep")
@user_errors
def sweep_cmd(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML), e.g. configs/study.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Sweep folder (jobs/, data/, sweep.json)."),
    launcher: str = typer.Option("local", "--launcher", help="local | accelerate | submitit."),
    workers: int = typer.Option(1, "--workers", help="local: jobs run in parallel."),
    threads: int | None = typer.Option(None, "--threads", help="local: torch threads per job."),
    num_processes: int | None = typer.Option(None, "--num-processes", help="accelerate: processes per job."),
    accelerate_config: str | None = typer.Option(None, "--accelerate-config", help="accelerate config file."),
    partition: str | None = typer.Option(None, "--partition", help="submitit: SLURM partition."),
    timeout_min: int = typer.Option(120, "--timeout-min", help="submitit: time limit per job."),
    gpus_per_node: int = typer.Option(1, "--gpus-per-node", help="submitit: GPUs per job."),
    cluster: str | None = typer.Option(None, "--cluster", help="submitit: slurm (default) | local | debug."),
    only: list[str] | None = typer.Option(None, "--only", help="Run only these groups (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs and their state; run nothing."),
    records: Path | None = typer.Option(
        None,
        "--records",
        help="Keep finished jobs' small files here too (copied back before planning, saved as each job ends), "
        "so that a sweep continues on another machine; iga collect reads this folder as a sweep.",
    ),
) -> None:
    """Run every job of SPEC that is not finished yet (finished ones are skipped, interrupted ones resume)."""
    from rich.console import Console
    from rich.table import Table

    from iga.sweeps.launchers import SubmititLauncher, make_launcher
    from iga.sweeps.sweep import job_state, load_spec, plan_jobs, prepare_sweep, sweep_base_dir

    spec = load_spec(spec_path)
    options = {
        "local": {"workers": workers, "threads": threads},
        "accelerate": {"num_processes": num_processes, "config_file": accelerate_config},
        "submitit": {
            "partition": partition,
            "timeout_min": timeout_min,
            "gpus_per_node": gpus_per_node,
            "cluster": cluster,
        },
    }.get(launcher, {})
    runner = make_launcher(launcher, **options)
    console = Console()
    if records is not None and records.exists() and not dry_run:
        from iga.models.micro_base_cache import DEFAULT_CACHE
        from iga.sweeps.records import restore_bases, restore_records

        restored = restore_records(records, out)
        if restored:
            console.print(f"{restored} finished job(s) copied back from {records}")
        if spec.micro_base is not None:
            for name in restore_bases(records, DEFAULT_CACHE):
                console.print(f"skill base {name} copied back from {records}")
    if dry_run:
        jobs = plan_jobs(spec, out, base_dir=sweep_base_dir(spec, build=False))
    else:
        jobs = prepare_sweep(spec, out)
        if records is not None and spec.micro_base is not None:
            from iga.sweeps.records import save_base

            if save_base(sweep_base_dir(spec, build=False), records):
                console.print(f"skill base kept in {records} (not shipped with the package)")
    if only:
        unknown = sorted(set(only) - {j.group for j in jobs})
        if unknown:
            raise ValueError(f"--only: unknown group(s) {unknown}; groups: {sorted({j.group for j in jobs})}")
        jobs = [j for j in jobs if j.group in only]
    states = {j.job_id: job_state(j) for j in jobs}
    todo = [j for j in jobs if states[j.job_id] != "done"]
    if dry_run:
        table = Table(title=f"{spec.name}: {len(jobs)} jobs, {len(todo)} to run ({runner.describe()})")
        for col in ("job", "group", "algorithm", "seed", "hparams", "state"):
            table.add_column(col)
        for j in jobs:
            table.add_row(j.job_id, j.group, j.algorithm, str(j.seed), str(j.hparams_seed), states[j.job_id])
        console.print(table)
        if isinstance(runner, SubmititLauncher) and todo:
            console.print(f"submitit parameters: {runner.parameters()}")
        return
    console.print(
        f"{spec.name}: {len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
        f"({runner.describe()})"
    )
    save_after = None
    if records is not None:
        from iga.sweeps.records import save_job_record, save_records

        save_records(out, records)  # sweep.json, and jobs finished before --records was given

        def save_after(job, code):
            save_job_record(job.folder, records)  # a failed job has no done marker: nothing is saved

    outcome = runner.launch(todo, say=console.print, after_job=save_after)
    failed = [k for k, v in outcome.items() if isinstance(v, int) and v != 0]
    if failed:
        console.print(f"[red]{len(failed)} job(s) failed[/]; re-run the same command to retry them")
        raise typer.Exit(1)
    console.print(f"next: iga collect {out}  ·  iga plot {out}")


@app.command("sweep-job", hidden=True)
@user_errors
def sweep_job_cmd(
    job_dir: Path = typer.Argument(..., help="A job folder written by `iga sweep`."),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
) -> None:
    """Run (or finish) one sweep job; launchers call this."""
    from iga.sweeps.sweep import run_job

    run_job(job_dir, progress=progress)
