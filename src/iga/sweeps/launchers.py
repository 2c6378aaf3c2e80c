"""Where sweep jobs run. Every launcher runs the same command, ``python -m iga sweep-job JOB_DIR``; they differ only
in how many run at once and on what (DomainBed's ``command_launchers``, as small classes).

- :class:`LocalLauncher`: N jobs in parallel on this machine, each a subprocess with ``cores // N`` torch threads.
- :class:`AccelerateLauncher`: one job at a time, each across every GPU through ``accelerate launch``.
- :class:`SubmititLauncher`: one SLURM array through ``submitit`` (optional extra ``iga[slurm]``);
  :meth:`SubmititLauncher.specs` lists what it would submit, so the submission is testable without a cluster.

Example:
    >>> LocalLauncher(workers=2).describe()
    'local: 2 parallel workers'
"""

from __future__ import annotations

import os
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iga.sweeps.sweep import Job


def job_command(job: Job) -> list[str]:
    """The command that runs (or finishes) ``job`` in a fresh process."""
    return [sys.executable, "-m", "iga", "sweep-job", str(job.folder)]


class Launcher(ABC):
    """Runs a list of jobs; returns ``{job_id: outcome}`` (an exit code, or a scheduler's job id)."""

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def launch(
        self,
        jobs: Sequence[Job],
        *,
        say: Callable[[str], None] = print,
        after_job: Callable[[Job, int], None] | None = None,
    ) -> dict[str, Any]:
        """Run ``jobs``; ``after_job(job, exit_code)`` is called as each one ends, where the launcher waits for
        its jobs (local, accelerate; not submitit, whose jobs end after ``launch`` returns)."""


def _run_logged(cmd: list[str], job: Job, env: dict[str, str]) -> int:
    # The job's own output goes to files in its folder; the sweep's console shows progress only.
    with open(job.folder / "stdout.log", "ab") as out, open(job.folder / "stderr.log", "ab") as err:
        return subprocess.run(cmd, stdout=out, stderr=err, env=env, check=False).returncode


@dataclass
class LocalLauncher(Launcher):
    workers: int = 1
    threads: int | None = None  # torch threads per job; None: cores // workers (at least 1)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def describe(self) -> str:
        return f"local: {self.workers} parallel worker{'s' if self.workers > 1 else ''}"

    def env(self) -> dict[str, str]:
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        # Oversubscribed OpenMP threads slow CPU training by orders of magnitude (docs/performance.md).
        return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def launch(
        self,
        jobs: Sequence[Job],
        *,
        say: Callable[[str], None] = print,
        after_job: Callable[[Job, int], None] | None = None,
    ) -> dict[str, int]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        env, codes = self.env(), {}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as bar, ThreadPoolExecutor(self.workers) as pool:
            task = bar.add_task("sweep jobs", total=len(jobs))
            futures = {pool.submit(_run_logged, job_command(j), j, env): j for j in jobs}
            for fut in as_completed(futures):
                job = futures[fut]
                codes[job.job_id] = code = fut.result()
                if code != 0:
                    say(
                        f"job {job.job_id} ({job.group}, seed {job.seed}) failed: see {job.folder}/stderr.log"
                    )
                if after_job is not None:
                    after_job(job, code)
                bar.advance(task)
        return codes


@dataclass
class AccelerateLauncher(Launcher):
    num_processes: int | None = None  # None: what the accelerate config says
    config_file: str | None = None

    def describe(self) -> str:
        procs = "config's" if self.num_processes is None else str(self.num_processes)
        return f"accelerate launch ({procs} processes, jobs one after another)"

    def command(self, job: Job) -> list[str]:
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
        if self.config_file:
            cmd += ["--config_file", self.config_file]
        if self.num_processes is not None:
            cmd += ["--num_processes", str(self.num_processes)]
        return [*cmd, "-m", "iga", "sweep-job", str(job.folder)]

    def launch(
        self,
        jobs: Sequence[Job],
        *,
        say: Callable[[str], None] = print,
        after_job: Callable[[Job, int], None] | None = None,
    ) -> dict[str, int]:
        codes = {}
        for i, job in enumerate(jobs, 1):
            say(f"[{i}/{len(jobs)}] {job.group} seed {job.seed} → {job.folder}")
            codes[job.job_id] = code = _run_logged(self.command(job), job, dict(os.environ))
            if code != 0:
                say(f"job {job.job_id} failed: see {job.folder}/stderr.log")
            if after_job is not None:
                after_job(job, code)
        return codes


@dataclass
class SubmititLauncher(Launcher):
    folder: str = "slurm"  # submitit's log folder (relative paths are inside the sweep folder)
    cluster: str | None = None  # None: SLURM when available; "local" / "debug" run here (submitit's own)
    partition: str | None = None
    timeout_min: int = 120
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    array_parallelism: int = 64
    extra: dict[str, Any] = field(default_factory=dict)  # any other `update_parameters` keyword

    def describe(self) -> str:
        return f"submitit ({self.cluster or 'slurm'}, partition {self.partition or 'default'})"

    def parameters(self, name: str = "iga-sweep") -> dict[str, Any]:
        params: dict[str, Any] = {
            "name": name,
            "timeout_min": self.timeout_min,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "slurm_array_parallelism": self.array_parallelism,
        }
        if self.partition:
            params["slurm_partition"] = self.partition
        return {**params, **self.extra}

    def specs(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """What :meth:`launch` submits: one entry per job with its command and the executor parameters."""
        params = self.parameters()
        return [{"job_id": j.job_id, "command": job_command(j), "parameters": params} for j in jobs]

    def launch(
        self,
        jobs: Sequence[Job],
        *,
        say: Callable[[str], None] = print,
        after_job: Callable[[Job, int], None] | None = None,  # not called: jobs end after launch returns
    ) -> dict[str, str]:
        try:
            import submitit
        except ImportError:
            raise ValueError(
                "--launcher submitit needs the submitit package: pip install 'iga[slurm]'"
            ) from None
        if not jobs:
            return {}
        folder = Path(self.folder)
        if not folder.is_absolute():
            folder = jobs[0].folder.parent.parent / folder
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=self.cluster)
        params = self.parameters()
        if executor.cluster != "slurm":  # the SLURM-only keys mean nothing to the local / debug executors
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        executor.update_parameters(**params)
        with executor.batch():
            submitted = [executor.submit(submitit.helpers.CommandFunction(job_command(j))) for j in jobs]
        ids = {j.job_id: s.job_id for j, s in zip(jobs, submitted, strict=True)}
        say(f"submitted {len(ids)} jobs through submitit ({executor.cluster}); logs in {folder}")
        if executor.cluster == "debug":  # debug jobs run when their result is asked for
            for s in submitted:
                s.result()
        return ids


def make_launcher(name: str, **options: Any) -> Launcher:
    """``local`` | ``accelerate`` | ``submitit`` with its options (keyword-only, checked by the class)."""
    launchers = {"local": LocalLauncher, "accelerate": AccelerateLauncher, "submitit": SubmititLauncher}
    if name not in launchers:
        raise ValueError(f"--launcher: unknown {name!r}; allowed: {', '.join(launchers)}")
    return launchers[name](**options)
