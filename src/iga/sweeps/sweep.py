"""``iga sweep``: algorithms × seeds × hyper-parameter draws (+ named variants) over one benchmark config.

DomainBed's shape, without its single file: a :class:`SweepSpec` expands into :class:`Job` s; each job has a
folder ``jobs/<job_id>`` named by a hash of everything that defines it, so re-running a sweep skips finished jobs
(``done`` marker) and continues interrupted ones from their checkpoint (resume gives the weights of an
uninterrupted run: tests/training pin that). Launchers (:mod:`iga.sweeps.launchers`) only decide *where* the
command ``iga sweep-job DIR`` runs; a job folder is a run folder (:class:`iga.runs.folder.RunFolder`) plus
``job.json`` and the ``done`` marker.

Layout (read by ``iga collect`` and ``iga plot``)::

    SWEEP_DIR/sweep.json            the spec and the job list
    SWEEP_DIR/data/<key>/           each distinct suite, built once
    SWEEP_DIR/jobs/<job_id>/        job.json, config.json, log.jsonl, result.json, completions.jsonl, done

Example:
    >>> spec = SweepSpec(algorithms=["erm", "iga"], seeds=[0, 1], oracle=False, train={"steps": 5})
    >>> jobs = plan_jobs(spec, "/tmp/sweep", base_dir="/tmp/base")
    >>> [(j.group, j.seed) for j in jobs]
    [('erm', 0), ('iga', 0), ('erm', 1), ('iga', 1)]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from iga.config import TrainConfig, _Strict, build_config
from iga.runs.folder import RunFolder
from iga.utils.dicts import deep_merge
from iga.utils.io import atomic_write_json, atomic_write_text, stable_hash

DONE_NAME = "done"
JOB_NAME = "job.json"


class Ablation(_Strict):
    name: str
    value: Any = None


class SweepGroup(_Strict):
    """One extra row of the study: an algorithm with fixed options / config / data changes (ablations, variants)."""

    name: str
    algorithm: str
    options: dict[str, Any] = Field(default_factory=dict)  # fixed algorithm options
    set: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields, e.g. {"train_domains": [...]}
    data: dict[str, Any] = Field(default_factory=dict)  # suite-config changes, e.g. {"shortcut": {...}}
    seeds: list[int] | None = None  # None: the spec's seeds
    hparams_draws: int | None = None  # None: the spec's
    ablation: Ablation | None = None


class SweepSpec(_Strict):
    """What a sweep runs. Every field has a default except what defines the study's content."""

    name: str = "sweep"  # also the "benchmark" name that seeds random hyper-parameter draws
    data: dict[str, Any] = Field(default_factory=lambda: {"preset": "small"})  # an IsoBench suite config
    data_seed: int = 0
    student: str = "small"
    base_dir: str | None = None  # None: the cached `iga pretrain` base of `student`
    # Built-in students only: PretrainConfig fields that replace the student's preset (steps, batch_size, seq_len,
    # lr, vocab_size, split_digits); a different base, cached under its own key like every base.
    pretrain: dict[str, Any] = Field(default_factory=dict)
    # The micro regime's word-level skill base (`iga pretrain --regime micro`) with these MicroBaseConfig changes;
    # {} is the default base (shipped with the package, so nothing is trained). The jobs' student is the base's.
    micro_base: dict[str, Any] | None = None
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields shared by every job
    eval_per_skeleton: int | None = Field(5, ge=1)
    eval_splits: list[str] = Field(default_factory=lambda: ["val", "id_test", "ood_surface", "ood_depth"])
    algorithms: list[str] = Field(default_factory=lambda: ["erm", "iga"])
    algorithm_options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # fixed options per algorithm
    # Options of an algorithm in every group that runs it (main comparison, draws and extra groups), under the
    # group's own options: e.g. {iga: {mask_stat: variance}} pins a statistic whatever IGAConfig's default is.
    option_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    hparams_draws: int = Field(0, ge=0)  # 0: defaults only; n: defaults + n seeded random draws
    # Training hyper-parameters drawn too in every random draw (iga.algorithms.hparams.TRAINING_SEARCH_SPACES: lr);
    # [] keeps the train section's values in every draw.
    search_training: list[str] = Field(default_factory=list)
    # Leave-one-training-domain-out model selection (DomainBed's second rule): for every group with hparams draws
    # (the oracle excepted), one more job per (seed, draw, training domain d), trained on the training domains but
    # d and scored on d's val split; `iga collect --select lodo` reads them. K more jobs per draw.
    lodo: bool = False
    oracle: bool = True  # add ERM trained on every domain (the ceiling of the ERM→oracle gap)
    groups: list[SweepGroup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        from iga.algorithms.registry import list_algorithms

        known = set(list_algorithms())
        for where, name in [("algorithms", a) for a in self.algorithms] + [
            (f"groups[{g.name}].algorithm", g.algorithm) for g in self.groups
        ]:
            if name not in known:
                raise ValueError(f"{where}: unknown algorithm {name!r}; allowed: {', '.join(sorted(known))}")
        for name in self.option_defaults:
            if name not in known:
                raise ValueError(
                    f"option_defaults: unknown algorithm {name!r}; allowed: {', '.join(sorted(known))}"
                )
        names = [g.name for g in self.groups] + list(self.algorithms) + (["oracle"] if self.oracle else [])
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"groups: names must be unique, repeated: {dupes}")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        from iga.runs.evaluate import check_eval_splits

        check_eval_splits(self.eval_splits)
        if self.micro_base is not None:
            self._check_micro_base()
        if self.search_training:
            from iga.algorithms.hparams import check_training_search

            check_training_search(self.search_training)
        if self.pretrain:
            from dataclasses import fields

            from iga.models.pretrain import PretrainConfig

            allowed = sorted(f.name for f in fields(PretrainConfig) if f.name not in ("student", "seed"))
            unknown = sorted(set(self.pretrain) - set(allowed))
            if unknown:
                raise ValueError(f"pretrain: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
        return self

    def _check_micro_base(self) -> None:
        from dataclasses import fields

        from iga.models.micro_base import MicroBaseConfig

        assert self.micro_base is not None
        clash = [name for name in ("base_dir", "pretrain") if getattr(self, name)]
        if clash:
            raise ValueError(f"micro_base: give either micro_base or {clash[0]}, not both")
        allowed = sorted(f.name for f in fields(MicroBaseConfig))
        unknown = sorted(set(self.micro_base) - set(allowed))
        if unknown:
            raise ValueError(f"micro_base: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
        student = MicroBaseConfig(**self.micro_base).student
        if "student" not in self.model_fields_set:
            self.student = student
        elif self.student != student:
            raise ValueError(
                f"student: {self.student!r} is not the micro base's student {student!r} (leave student out)"
            )


def load_spec(path: str | os.PathLike) -> SweepSpec:
    from iga.config import load_yaml

    return build_config(SweepSpec, load_yaml(path), source=str(path))


@dataclass(frozen=True)
class Job:
    """One training + evaluation run of the sweep. ``job_id`` hashes every field but the folder paths."""

    job_id: str
    group: str
    algorithm: str
    seed: int
    hparams_seed: int
    hparams: dict[str, Any]
    ablation: dict[str, Any] | None
    data_key: str
    data_config: dict[str, Any]
    eval_per_skeleton: int | None
    eval_splits: list[str]
    config: dict[str, Any]
    #: A leave-one-domain-out job (``SweepSpec.lodo``): the training domain it leaves out; None for every other job.
    left_out: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.config["out_dir"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _suite(spec: SweepSpec, changes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from iga.isomers import resolve_config

    suite = resolve_config(deep_merge(spec.data, changes)).to_dict()
    return stable_hash({"suite": suite, "seed": spec.data_seed}, 12), suite


def _domains_by_role(suite: dict[str, Any]) -> dict[str, list[str]]:
    from iga.isomers import load_domains, resolve_config
    from iga.isomers.build import select_domains

    chosen = select_domains(resolve_config(suite), load_domains())
    roles: dict[str, list[str]] = {}
    for d in chosen.values():
        roles.setdefault(d.role, []).append(d.name)
    return roles


def _variants(spec: SweepSpec) -> list[SweepGroup]:
    main = [
        SweepGroup(name=a, algorithm=a, options=spec.algorithm_options.get(a, {})) for a in spec.algorithms
    ]
    if spec.oracle:
        main.append(SweepGroup(name="oracle", algorithm="erm", data={"oracle": True}))
    return main + list(spec.groups)


def plan_jobs(spec: SweepSpec, sweep_dir: str | os.PathLike, *, base_dir: str) -> list[Job]:
    """Every job of ``spec``: the main comparison first, then the extra groups, each seed-major (an interrupted
    sweep has every row of the main table at its first seeds rather than some rows complete and others missing).
    Pure: builds and trains nothing."""
    variants = _variants(spec)
    n_main = len(variants) - len(spec.groups)
    jobs = []
    for index, group in enumerate(variants):
        data_key, suite = _suite(spec, group.data)
        overrides = dict(group.set)
        if group.data.get("oracle") and "train_domains" not in overrides:
            roles = _domains_by_role(suite)
            overrides["train_domains"] = roles.get("train", []) + roles.get("heldout", [])
        draws = spec.hparams_draws if group.hparams_draws is None else group.hparams_draws
        lodo_domains = _lodo_domains(spec, group, suite, overrides, draws)
        for seed in group.seeds if group.seeds is not None else spec.seeds:
            for hparams_seed in range(draws + 1):
                job = _make_job(
                    spec, group, Path(sweep_dir), base_dir, data_key, suite, overrides, seed, hparams_seed
                )
                jobs.append(((int(index >= n_main), seed, index, hparams_seed, ""), job))
                for left_out in lodo_domains:  # after every main and extra job: they only select
                    kept = [d for d in lodo_domains if d != left_out]
                    lodo = _make_job(
                        spec, group, Path(sweep_dir), base_dir, data_key, suite,
                        {**overrides, "train_domains": kept}, seed, hparams_seed, left_out=left_out,
                    )  # fmt: skip
                    jobs.append(((2, seed, index, hparams_seed, left_out), lodo))
    return [job for _, job in sorted(jobs, key=lambda pair: pair[0])]


def _lodo_domains(
    spec: SweepSpec, group: SweepGroup, suite: dict[str, Any], overrides: dict[str, Any], draws: int
) -> list[str]:
    """The training domains a group's leave-one-out jobs leave out in turn ([] without ``spec.lodo``, without
    draws to choose from, for the oracle, or with fewer than 2 training domains)."""
    if not spec.lodo or draws == 0 or group.data.get("oracle"):
        return []
    domains = list(overrides.get("train_domains") or _domains_by_role(suite).get("train", []))
    return domains if len(domains) >= 2 else []


def _check_options(group: SweepGroup, options: dict[str, Any]) -> None:
    """The algorithm's own validation of its options (e.g. IGA's ``ema_beta`` needs ``mask_stat="variance"``),
    at planning time rather than when the job starts."""
    from iga.algorithms.registry import get_algorithm

    try:
        get_algorithm(group.algorithm)(num_domains=2, **options)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sweep group {group.name!r}: {e}") from None


def _make_job(
    spec: SweepSpec,
    group: SweepGroup,
    sweep_dir: Path,
    base_dir: str,
    data_key: str,
    suite: dict[str, Any],
    overrides: dict[str, Any],
    seed: int,
    hparams_seed: int,
    *,
    left_out: str | None = None,
) -> Job:
    from iga.algorithms.hparams import search_space, sweep_hparams, training_hparams

    # hparams_seed 0 runs the defaults; any other seed draws the searched hyper-parameters (DomainBed's rule).
    drawn = sweep_hparams(group.algorithm, benchmark=spec.name, hparams_seed=hparams_seed, trial_seed=seed)
    searched = set(search_space(group.algorithm)) if hparams_seed else set()
    pinned = spec.option_defaults.get(group.algorithm, {})
    options = pinned | {k: v for k, v in drawn.items() if k in searched} | group.options
    shared = {"data_dir": "", "out_dir": "", "student": spec.student, "base_dir": base_dir, "seed": seed}
    drawn_training = training_hparams(
        spec.search_training, benchmark=spec.name, hparams_seed=hparams_seed, trial_seed=seed
    )
    cfg = deep_merge({**shared, **spec.train, **drawn_training}, overrides)
    cfg.update(algorithm=group.algorithm, algorithm_options=options)
    identity = {  # everything that defines the job, but not where it lives
        "group": group.name,
        "config": cfg,
        "data_key": data_key,
        "hparams_seed": hparams_seed,
        "eval_per_skeleton": spec.eval_per_skeleton,
        "eval_splits": spec.eval_splits,
    }
    eval_splits = list(spec.eval_splits)
    if left_out is not None:  # only then in the identity: every other job keeps its id
        eval_splits = ["val"]  # the val split renders every training domain, the left-out one included
        identity.update(left_out=left_out, eval_splits=eval_splits)
    job_id = stable_hash(identity, 12)
    cfg.update(data_dir=str(sweep_dir / "data" / data_key), out_dir=str(sweep_dir / "jobs" / job_id))
    build_config(
        TrainConfig, cfg, source=f"sweep group {group.name!r}"
    )  # fail at planning time, not mid-sweep
    _check_options(group, options)
    return Job(
        job_id=job_id,
        group=group.name,
        algorithm=group.algorithm,
        seed=seed,
        hparams_seed=hparams_seed,
        hparams={**drawn, **pinned, **group.options, **drawn_training},
        ablation=group.ablation.model_dump() if group.ablation else None,
        data_key=data_key,
        data_config=suite,
        eval_per_skeleton=spec.eval_per_skeleton,
        eval_splits=eval_splits,
        config=cfg,
        left_out=left_out,
    )


def job_state(job: Job) -> str:
    """``done`` | ``incomplete`` (an attempt started: it resumes from its checkpoint or restarts) | ``pending``."""
    if (job.folder / DONE_NAME).exists():
        return "done"
    return "incomplete" if RunFolder(job.folder).started() else "pending"


def prepare_sweep(spec: SweepSpec, sweep_dir: str | os.PathLike, *, base_dir: str | None = None) -> list[Job]:
    """Plan the jobs, build every distinct suite once, write ``sweep.json`` and each pending job's ``job.json``.

    ``base_dir`` defaults to the spec's, else the cached pretrained base of ``spec.student`` (built now if missing,
    so that parallel jobs never race to pretrain it).
    """
    import datetime as dt

    from iga.isomers import build_suite

    sweep_dir = Path(sweep_dir)
    if base_dir is None:
        base_dir = sweep_base_dir(spec, build=True)
    jobs = plan_jobs(spec, sweep_dir, base_dir=base_dir)
    _check_finished_hparams(jobs)
    for job in {j.data_key: j for j in jobs}.values():
        target = sweep_dir / "data" / job.data_key
        if not (target / "manifest.json").exists():
            build_suite(job.data_config, target, seed=spec.data_seed)
    for job in jobs:
        if job_state(job) != "done":
            job.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(job.folder / JOB_NAME, job.to_dict())
    atomic_write_json(
        sweep_dir / "sweep.json",
        {
            "name": spec.name,
            "spec": spec.model_dump(),
            "jobs": [j.to_dict() for j in jobs],
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
    return jobs


def _check_finished_hparams(jobs: list[Job]) -> None:
    """Refuse to continue a sweep whose finished jobs ran other hyper-parameters than the spec now resolves to.

    A job id hashes the options a spec states, not the defaults behind the rest, so a changed default (IGA's
    ``mask_stat`` became ``"sign"``) would otherwise mix runs of two methods under one group. Only the hyper-
    parameters both records have are compared: an option added since keeps old sweeps resumable.
    """
    stale = []
    for job in jobs:
        path = job.folder / JOB_NAME
        if job_state(job) != "done" or not path.exists():
            continue
        recorded = json.loads(path.read_text()).get("hparams") or {}
        planned = json.loads(json.dumps(job.hparams))  # the JSON form job.json stores
        changed = sorted(k for k in recorded.keys() & planned.keys() if recorded[k] != planned[k])
        if changed:
            diffs = ", ".join(f"{k}: {recorded[k]!r} then, {planned[k]!r} now" for k in changed)
            stale.append(f"{job.job_id} ({job.group}, seed {job.seed}): {diffs}")
    if stale:
        raise ValueError(
            f"{len(stale)} finished job(s) ran other hyper-parameters than this spec gives now (a default "
            f"changed?): {'; '.join(stale[:3])}{' …' if len(stale) > 3 else ''}. Pin the option in the spec "
            "(option_defaults or the group's options) to continue with what ran, or use a new --out"
        )


def sweep_base_dir(spec: SweepSpec, *, build: bool) -> str:
    """The base folder every job of ``spec`` trains from: ``spec.base_dir``, else the micro regime's skill base
    (``spec.micro_base``; the shipped copy or trained now when ``build``), else the cached base of a built-in
    student (pretrained now when ``build``), else a local checkpoint or a real-model preset's cache (converted now
    when ``build``). Without ``build`` nothing is created, and the path — hence every job id — is the same."""
    from iga.models.gguf import REAL_STUDENTS, cached_student_dir
    from iga.models.pretrain import base_path, ensure_base, pretrain_config
    from iga.models.resolve import resolve_student
    from iga.models.students import STUDENTS

    if spec.base_dir:
        return spec.base_dir
    if spec.micro_base is not None:
        from iga.models.micro_base import MicroBaseConfig
        from iga.models.micro_base_cache import ensure_micro_base, micro_base_path

        micro = MicroBaseConfig(**spec.micro_base)
        return str(ensure_micro_base(micro)[0] if build else micro_base_path(micro))
    if spec.student in STUDENTS:
        import dataclasses

        cfg = dataclasses.replace(pretrain_config(spec.student, seed=spec.data_seed), **spec.pretrain)
        return str(ensure_base(cfg)[0] if build else base_path(cfg))
    if spec.pretrain:
        raise ValueError(
            f"pretrain: only for built-in students ({', '.join(STUDENTS)}), not {spec.student!r}"
        )
    if build:
        return str(resolve_student(spec.student))
    return str(cached_student_dir(spec.student) if spec.student in REAL_STUDENTS else Path(spec.student))


def run_job(job_dir: str | os.PathLike, *, progress: bool = False) -> dict[str, Any]:
    """Run (or finish) one job in this process: train, resuming from a checkpoint if one exists; evaluate;
    write ``done``. Under a multi-process launch every rank trains and rank 0 alone evaluates and marks done."""
    from iga.runs.pipeline import run_training

    job_dir = Path(job_dir)
    path = job_dir / JOB_NAME
    if not path.exists():
        raise FileNotFoundError(f"{job_dir} is not a sweep job folder (no {JOB_NAME})")
    if (job_dir / DONE_NAME).exists():
        return {"state": "done"}
    job = json.loads(path.read_text())
    cfg = build_config(TrainConfig, job["config"], source=str(path))
    if Path(cfg.out_dir).resolve() != job_dir.resolve():
        raise ValueError(f"{path}: config.out_dir {cfg.out_dir!r} is not this folder (was the sweep moved?)")
    run = RunFolder(job_dir)
    resume = run.checkpoint.exists()
    if not resume:  # an attempt that died before its first checkpoint: start clean
        run.clear_attempt()
    result = run_training(
        cfg,
        resume=resume,
        per_skeleton=job["eval_per_skeleton"],
        eval_splits=tuple(job["eval_splits"]),
        progress=progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(job_dir / DONE_NAME, "")
    return result
