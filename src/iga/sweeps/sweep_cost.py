"""What a sweep cost: the job time each finished run recorded, per group and in all (``iga collect``'s "Cost").

Only measured fields are summed, never estimates: ``result.train.train_seconds`` (the training steps, including
the steps of earlier interrupted runs of the same job) and ``result.eval.generation_seconds`` (greedy decoding
of every evaluated split). Data building, model loading and the LCS pass are not in either, so the totals are a
lower bound on the job time. Every finished job counts, also hyper-parameter draws that model selection dropped:
the sweep paid for them. A job of one torch thread occupies one core for its time; divide by the number of
parallel workers for the sweep's wall time.

Example:
    >>> from pathlib import Path
    >>> from iga.sweeps.sweep_results import JobRecord
    >>> def job(group, train, gen):
    ...     result = {"train": {"train_seconds": train}, "eval": {"generation_seconds": gen}}
    ...     return JobRecord(group, group, 0, 0, Path("."), finished=True, result=result)
    >>> cost = sweep_cost([job("erm", 300.0, 60.0), job("iga", 420.0, 60.0)])
    >>> cost["total"]["job_minutes"], cost["groups"]["iga"]["train_minutes"]
    (14.0, 7.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iga.sweeps.collect_render import ResultTable, format_number
from iga.sweeps.sweep_results import JobRecord, by_group, group_order

COST_COLUMNS = ("Group", "Jobs", "Train (min)", "Generation (min)", "Job time (min)", "Per job (min)")


def _minutes(seconds: Iterable[float | None]) -> tuple[float, int]:
    """(sum in minutes, number of jobs that recorded the field)."""
    values = [s for s in seconds if s is not None]
    return sum(values) / 60.0, len(values)


def _group_cost(runs: list[JobRecord]) -> dict[str, Any]:
    train, n_train = _minutes(r.metric("train", "train_seconds") for r in runs)
    gen, n_gen = _minutes(r.metric("eval", "generation_seconds") for r in runs)
    return {
        "jobs": len(runs),
        "train_minutes": round(train, 3),
        "generation_minutes": round(gen, 3),
        "job_minutes": round(train + gen, 3),
        "per_job_minutes": round((train + gen) / len(runs), 3) if runs else None,
        # Jobs without the field (an older result.json) are counted in "jobs" but add nothing to the sums.
        "jobs_without_train_seconds": len(runs) - n_train,
        "jobs_without_generation_seconds": len(runs) - n_gen,
    }


def sweep_cost(finished: Iterable[JobRecord]) -> dict[str, Any]:
    """``{"groups": {group: cost}, "total": cost}`` over the finished jobs (see the module docstring)."""
    runs = [r for r in finished if r.finished]
    groups = by_group(runs)
    return {
        "groups": {g: _group_cost(groups[g]) for g in group_order(groups)},
        "total": _group_cost(runs),
    }


def cost_table(cost: dict[str, Any]) -> ResultTable:
    """The "Cost" table of ``iga collect``: one row per group and a total row."""

    def row(label: str, c: dict[str, Any]) -> list[str]:
        per_job = c["per_job_minutes"]
        return [
            label,
            str(c["jobs"]),
            format_number(c["train_minutes"], 1),
            format_number(c["generation_minutes"], 1),
            format_number(c["job_minutes"], 1),
            "–" if per_job is None else format_number(per_job, 1),
        ]

    body = [row(g, c) for g, c in cost["groups"].items()]
    body.append(row("**total**", cost["total"]))
    total = cost["total"]
    notes = [
        "Sums of the time each finished job recorded: training steps (result.train.train_seconds, resumed runs "
        "included) and greedy generation (result.eval.generation_seconds). Data building, model loading and the "
        "LCS pass are not recorded, so this is a lower bound. Unselected hyper-parameter draws count. "
        f"In all {total['job_minutes'] / 60:.2f} job-hours; wall time ≈ that / the number of parallel workers."
    ]
    missing = total["jobs_without_train_seconds"] + total["jobs_without_generation_seconds"]
    if missing:
        notes.append(
            f"{missing} job field(s) missing (older result.json files): those jobs add nothing to a sum."
        )
    return ResultTable("Cost", list(COST_COLUMNS), body, "", notes)
