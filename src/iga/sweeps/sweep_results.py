"""A sweep folder's results as records: the one loader, model selection, mean ± 95% CI and group order that
``iga collect`` (:mod:`iga.sweeps.collect`) and ``iga plot`` (:mod:`iga.sweeps.sweep_plots`) share,
so that a table cell and the bar drawn for it are the same number.

* :func:`load_sweep` reads ``SWEEP_DIR/jobs/*/{job.json, result.json, log.jsonl}``; only a job with the
  ``done`` marker is finished (a job still training may already have a ``result.json``). A folder without ``jobs/``
  whose sub-folders hold ``result.json`` (``runs/demo/erm``, ``runs/demo/iga``) is read as plain runs: group =
  ``config.algorithm``, seed = ``config.seed``, hparams_seed = 0, finished once evaluation wrote its summary.
* :func:`select_models` keeps, per (group, seed), the hparams draw with the best in-domain validation accuracy
  (DomainBed's "training-domain validation"): the test splits never choose the model.
* :func:`mean_ci` is the mean with the Student-t half-width ``t(0.975, n−1)·sd/√n`` (sd at ddof=1).
* :func:`group_order` puts ``erm`` first, ``oracle`` last, the rest alphabetically; :func:`ablation_sort_key`
  orders the values of an ablation.

Example (a two-seed sweep written by hand)::

    >>> import json, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for seed, val in ((0, 0.7), (1, 0.6)):
    ...     job = root / "jobs" / f"erm{seed}"
    ...     job.mkdir(parents=True)
    ...     _ = (job / "job.json").write_text(json.dumps({"group": "erm", "seed": seed}))
    ...     summary = {"val_accuracy": val, "ood_accuracy": 0.1 + seed}
    ...     _ = (job / "result.json").write_text(json.dumps({"eval": {"summary": summary}}))
    ...     _ = (job / "done").write_text("")
    >>> records, finished = load_finished(root)
    >>> [(r.group, r.seed, r.metric("eval", "summary", "ood_accuracy")) for r in finished]
    [('erm', 0, 0.1), ('erm', 1, 1.1)]
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from iga.runs.folder import RESULT_NAME, RunFolder
from iga.sweeps.sweep import DONE_NAME, JOB_NAME
from iga.utils.io import InputError, read_jsonl

#: Group names with a fixed role in the main comparison (first and last row, the ERM→oracle share).
ERM, ORACLE = "erm", "oracle"


# ------------------------------------------------------------------------------------------------------------
# Reading the sweep folder
# ------------------------------------------------------------------------------------------------------------


@dataclass
class JobRecord:
    """One job of a sweep: its entry from ``job.json`` and, once ``done`` exists, its ``result.json``."""

    job_id: str
    group: str
    seed: int
    hparams_seed: int
    #: The job folder (``jobs/<id>``), or the run folder of a plain run.
    folder: Path
    algorithm: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    ablation: dict[str, Any] | None = None
    finished: bool = False
    result: dict[str, Any] | None = None
    #: A leave-one-domain-out job's left-out training domain (it only serves ``select="lodo"``); None otherwise.
    left_out: str | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return ((self.result or {}).get("eval") or {}).get("summary") or {}

    @property
    def lcs(self) -> dict[str, Any]:
        return ((self.result or {}).get("eval") or {}).get("lcs") or {}

    @property
    def result_path(self) -> Path:
        return RunFolder(self.folder).result

    @cached_property
    def log(self) -> list[dict[str, Any]]:
        """The rows of ``log.jsonl`` ([] without one), read on first use: only the figures need them."""
        path = RunFolder(self.folder).log
        return read_jsonl(path) if path.is_file() else []

    def metric(self, *keys: str) -> float | None:
        """The number at ``result[keys[0]][keys[1]]...``: None when absent or null, ValueError (naming the file
        and the field) when not a number."""
        node: Any = self.result or {}
        for key in keys:
            if not isinstance(node, Mapping) or node.get(key) is None:
                return None
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise InputError(
                f"expected a number or null, got {node!r}", file=self.result_path, field=".".join(keys)
            )
        return float(node)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming the file when it is not valid JSON or not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})", file=path) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=path)
    return obj


def _int_field(entry: Mapping[str, Any], key: str, path: Path, default: int | None = None) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"expected an integer, got {value!r}", file=path, field=key)
    return value


def _read_job(job_dir: Path) -> JobRecord:
    path = job_dir / JOB_NAME
    entry = read_json_object(path)
    group = entry.get("group")
    if not isinstance(group, str) or not group:
        raise InputError(f"must be a non-empty string, got {group!r}", file=path, field="group")
    ablation = entry.get("ablation")
    if ablation is not None and not (isinstance(ablation, dict) and isinstance(ablation.get("name"), str)):
        raise InputError(
            f"expected null or {{'name': str, 'value': ...}}, got {ablation!r}", file=path, field="ablation"
        )
    hparams = entry.get("hparams") or {}
    if not isinstance(hparams, dict):
        raise InputError(f"expected an object, got {hparams!r}", file=path, field="hparams")
    record = JobRecord(
        job_id=str(entry.get("job_id") or job_dir.name),
        group=group,
        seed=_int_field(entry, "seed", path),
        hparams_seed=_int_field(entry, "hparams_seed", path, default=0),
        folder=job_dir,
        algorithm=entry.get("algorithm"),
        hparams=hparams,
        ablation=ablation,
        left_out=entry.get("left_out"),
    )
    if (job_dir / DONE_NAME).exists():
        if not record.result_path.exists():
            raise FileNotFoundError(
                f"{record.result_path}: missing although {job_dir / DONE_NAME} marks the job done"
            )
        record.result = read_json_object(record.result_path)
        record.finished = True
        if not record.summary:
            raise InputError(
                "missing (the run is finished but was not evaluated)",
                file=record.result_path,
                field="eval.summary",
            )
    return record


def _read_run_folder(run_dir: Path) -> JobRecord:
    """A plain ``iga train`` run folder (the demo's ``erm``/``iga``), seen as a one-job sweep entry."""
    path = RunFolder(run_dir).result
    result = read_json_object(path)
    config = result.get("config")
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("algorithm"), str)
        or not config["algorithm"]
    ):
        raise InputError("missing (needed to name the run's group)", file=path, field="config.algorithm")
    record = JobRecord(
        job_id=run_dir.name,
        group=config["algorithm"],
        seed=_int_field(config, "seed", path, default=0),
        hparams_seed=0,
        folder=run_dir,
        algorithm=config["algorithm"],
        hparams=dict(config.get("algorithm_options") or {}),
        result=result,
    )
    # A run folder has no ``done`` marker: it counts as finished once evaluation wrote its summary.
    record.finished = bool(record.summary)
    return record


def is_run_collection(sweep_dir: str | os.PathLike) -> bool:
    """True for a folder of plain run folders (no ``jobs/``), like the demo's ``runs/demo``."""
    return not (Path(sweep_dir) / "jobs").is_dir()


def load_sweep(sweep_dir: str | os.PathLike) -> list[JobRecord]:
    """Every job of the sweep, finished or not (see :attr:`JobRecord.finished`), in job-folder order.

    A ``jobs/<id>/`` folder without ``job.json`` is a job still being written and is skipped. Without a
    ``jobs/`` folder, the sub-folders of ``sweep_dir`` that hold a ``result.json`` are read as runs instead.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such sweep folder")
    if is_run_collection(root):
        return [_read_run_folder(d) for d in sorted(root.iterdir()) if RunFolder(d).result.is_file()]
    return [_read_job(d) for d in sorted((root / "jobs").iterdir()) if (d / JOB_NAME).is_file()]


def load_finished(sweep_dir: str | os.PathLike) -> tuple[list[JobRecord], list[JobRecord]]:
    """``(every record, the finished ones)``; ValueError when the folder holds no job or no finished job."""
    root = Path(sweep_dir)
    records = load_sweep(root)
    if not records:
        raise ValueError(
            f"{root}: no jobs (expected {root / 'jobs'}/*/{JOB_NAME} or run folders with {RESULT_NAME})"
        )
    finished = [r for r in records if r.finished]
    if not finished:
        raise ValueError(
            f"{root}: none of its {len(records)} jobs has finished yet (no '{DONE_NAME}' marker)"
        )
    return records, finished


# ------------------------------------------------------------------------------------------------------------
# Model selection
# ------------------------------------------------------------------------------------------------------------


#: ``select`` choices of :func:`select_models` -> the ``eval.summary`` metric they maximise.
#: ``"test"`` is DomainBed's test-domain validation, the oracle rule: it selects on the held-out accuracy it reports.
#: ``"lodo"`` (leave-one-training-domain-out) reads the ``val`` accuracy of the left-out domain of the
#: ``SweepSpec.lodo`` jobs.
SELECTION_METRICS = {
    "val": "val_accuracy",
    "val_nocue": "val_nocue_accuracy",
    "test": "ood_accuracy",
    "lodo": "lodo_val_accuracy",
}


def selection_line(select: str = "val") -> str:
    """The table-header line naming the model-selection rule."""
    if select == "lodo":
        return (
            "model selection: leave-one-training-domain-out validation (per draw, the mean val accuracy on each "
            "training domain of a run trained on the others)"
        )
    if select == "test":
        return (
            "model selection: test-domain validation (ORACLE: the held-out ood_surface accuracy itself picks the "
            "draw; an upper bound on what selection can give, not a result)"
        )
    where = {"val": "val split", "val_nocue": "val split without shortcut cues"}[select]
    return f"model selection: in-domain validation accuracy ({where}, training domains)"


def _lodo_score(record: JobRecord, held: list[JobRecord]) -> float | None:
    """Mean val accuracy on the left-out domain over a draw's leave-one-out jobs; None unless every training
    domain of ``record`` was left out once (and scored)."""
    domains = ((record.result or {}).get("config") or {}).get("train_domains") or []
    by_domain = {r.left_out: r.metric("eval", "summary", "by_domain", str(r.left_out), "val") for r in held}
    values = [by_domain.get(d) for d in domains]
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def select_models(records: Iterable[JobRecord], *, select: str = "val") -> tuple[list[JobRecord], list[str]]:
    """Per (group, seed), the finished hparams draw with the highest ``eval.summary.val_accuracy``.

    ``select="val_nocue"`` maximises ``val_nocue_accuracy`` instead (the same instances with their shortcut cues
    removed; jobs must have evaluated the ``val_nocue`` split): ``val`` keeps the training domains' cues, which
    the test splits never show, so selecting on it rewards cue reading. ``select="test"`` maximises
    ``ood_accuracy``: DomainBed's oracle rule, labelled as such wherever it is reported. ``select="lodo"``
    maximises the mean, over the training domains d, of the ``val`` accuracy on d of the draw's leave-one-out job
    without d (``SweepSpec.lodo``); a draw missing one of them is not a candidate. Leave-one-out jobs are never
    returned: they only select.

    Ties go to the lowest ``hparams_seed``; when no draw reports a (finite) validation accuracy, hparams_seed 0
    (else the lowest) is kept and a note says so. Returns the kept records (sorted by group, seed) and the notes.
    """
    if select not in SELECTION_METRICS:
        raise ValueError(f"select: unknown {select!r}; allowed: {', '.join(SELECTION_METRICS)}")
    metric = SELECTION_METRICS[select]
    by_key: dict[tuple[str, int], list[JobRecord]] = {}
    left_out: dict[tuple[str, int, int], list[JobRecord]] = {}
    for r in records:
        if r.finished and r.left_out is None:
            by_key.setdefault((r.group, r.seed), []).append(r)
        elif r.finished:
            left_out.setdefault((r.group, r.seed, r.hparams_seed), []).append(r)
    kept: list[JobRecord] = []
    notes: list[str] = []
    for (group, seed), draws in sorted(by_key.items()):
        draws = sorted(draws, key=lambda r: r.hparams_seed)
        if select == "lodo":
            scored = [(_lodo_score(r, left_out.get((group, seed, r.hparams_seed), [])), r) for r in draws]
        else:
            scored = [(r.metric("eval", "summary", metric), r) for r in draws]
        with_val = [(v, r) for v, r in scored if v is not None and math.isfinite(v)]
        if with_val:
            # max() keeps the first of equal keys, and draws are sorted by hparams_seed: ties → lowest seed.
            kept.append(max(with_val, key=lambda vr: vr[0])[1])
        else:
            default = next((r for r in draws if r.hparams_seed == 0), draws[0])
            kept.append(default)
            if len(draws) > 1:
                notes.append(
                    f"{group}, seed {seed}: no {metric} in any of its {len(draws)} hparams draws; "
                    f"kept hparams_seed {default.hparams_seed} without selection"
                )
    return kept, notes


# ------------------------------------------------------------------------------------------------------------
# Mean ± 95% CI over seeds
# ------------------------------------------------------------------------------------------------------------


def summary_difference(record: JobRecord, a: str, b: str) -> float | None:
    """``eval.summary[a] − eval.summary[b]`` of one run (a paired, per-run difference), None if either is missing."""
    x, y = record.metric("eval", "summary", a), record.metric("eval", "summary", b)
    return None if x is None or y is None else x - y


#: The cue gain's two ``eval.summary`` keys: validation accuracy with the shortcut cues, and without them.
CUE_GAIN = ("val_accuracy", "val_nocue_accuracy")


def cue_gain(record: JobRecord) -> float | None:
    """What the shortcut cues add to one run's validation accuracy, on the same problems (None without val_nocue)."""
    return summary_difference(record, *CUE_GAIN)


def finite(x: Any) -> float | None:
    """``x`` as a finite float, or None for null / NaN / ±inf / non-numbers (a diverged run logs NaN losses).

    >>> finite(3), finite(float("nan")), finite(True), finite("0.5")
    (3.0, None, None, None)
    """
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# typed=True: t_quantile_975(True) must reach the check below, not the cached answer for 1.
@lru_cache(maxsize=256, typed=True)
def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile ``scipy.stats.t.ppf(0.975, df)`` for an integer ``df ≥ 1`` (cached: a
    table asks for the same few df).

    >>> round(t_quantile_975(2), 3), round(t_quantile_975(1), 3)
    (4.303, 12.706)
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an integer >= 1, got {df!r}")
    from iga.utils.extras import require

    stats = require("scipy.stats", extra="experiments", purpose="confidence intervals")
    return float(stats.t.ppf(0.975, df))


@dataclass(frozen=True)
class MeanCI:
    """Mean and 95% CI half-width over ``n`` seeds (``ci95`` None when n < 2, ``mean`` None when n = 0)."""

    mean: float | None
    ci95: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n}


def mean_ci(values: Iterable[float | None]) -> MeanCI:
    """Mean ± t(0.975, n−1)·sd/√n over the finite values (null: no record behind it; NaN: a diverged run).

    >>> s = mean_ci([0.2, 0.3, None, 0.4])
    >>> s.n, round(s.mean, 6), round(s.ci95, 4)
    (3, 0.3, 0.2484)
    """
    xs = [x for x in map(finite, values) if x is not None]
    if not xs:
        return MeanCI(None, None, 0)
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return MeanCI(mean, None, 1)
    half = t_quantile_975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return MeanCI(mean, half, len(xs))


# ------------------------------------------------------------------------------------------------------------
# Order of groups and of ablation values
# ------------------------------------------------------------------------------------------------------------


def group_order(groups: Iterable[str]) -> list[str]:
    """Group order of every table and figure: erm first, oracle last, the rest alphabetically.

    >>> group_order(["oracle", "iga", "erm", "dro", "iga"])
    ['erm', 'dro', 'iga', 'oracle']
    """
    rank = {ERM: 0, ORACLE: 2}
    return sorted(set(groups), key=lambda g: (rank.get(g, 1), g))


def by_group(records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    """Records per group, groups in :func:`group_order`, records by seed."""
    groups: dict[str, list[JobRecord]] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    return {g: sorted(groups[g], key=lambda r: r.seed) for g in group_order(groups)}


def ablation_sort_key(value: Any) -> tuple[int, float, str]:
    """Ablation values: numbers in numeric order, then None/"none" (the option switched off), then the rest
    alphabetically.

    >>> sorted([10, "none", 3, "cos", None, 0.5], key=ablation_sort_key)
    [0.5, 3, 10, None, 'none', 'cos']
    """
    if finite(value) is not None:
        return (0, float(value), "")
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return (1, 0.0, str(value))
    return (2, 0.0, str(value))


#: What :func:`shared_hparam` returns when the runs do not all record one value.
UNKNOWN: Any = object()


def shared_hparam(records: Sequence[JobRecord], name: str) -> Any:
    """The value of option ``name`` that every record keeps alike in ``hparams``, else :data:`UNKNOWN`.

    It places a main-comparison group among its ablation's values (``iga`` at ``tau=10``, beside
    ``iga:tau=3``).
    """
    values = [r.hparams.get(name, UNKNOWN) for r in records]
    first = values[0] if values else UNKNOWN
    return first if all(v is not UNKNOWN and v == first for v in values) else UNKNOWN
