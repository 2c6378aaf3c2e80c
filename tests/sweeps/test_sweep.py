"""`iga sweep`: job planning (hash-named, seeded draws, oracle, variants), resumable runs, the three launchers."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iga.cli import app
from iga.sweeps import launchers
from iga.sweeps.launchers import AccelerateLauncher, LocalLauncher, SubmititLauncher, make_launcher
from iga.sweeps.sweep import SweepSpec, job_state, plan_jobs, prepare_sweep, run_job

TRAIN = {"steps": 3, "sets_per_batch": 1, "log_every": 1, "checkpoint_every": 2, "max_length": 384}
DATA = {"preset": "tiny", "skeletons": ["S01", "S06"]}


@pytest.fixture(scope="module")
def micro_base(tmp_path_factory) -> Path:
    """A micro Llama + BPE tokenizer on the tiny suite's text, saved as a base folder (no pretraining)."""
    from iga.isomers import generate_records
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    records = generate_records(DATA, seed=0)
    texts = [r["question"] + "\n" + r["gold_cot"] for split in records.values() for r in split]
    tok = train_bpe_tokenizer(texts, vocab_size=384)
    out = tmp_path_factory.mktemp("base")
    build_student("micro", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _spec(**changes) -> SweepSpec:
    return SweepSpec(**{"name": "t", "data": DATA, "train": TRAIN, "eval_per_skeleton": 1, **changes})


def test_plan_is_stable_hash_named_and_covers_algorithms_seeds_draws(tmp_path):
    spec = _spec(algorithms=["erm", "vrex"], seeds=[0, 1], hparams_draws=2, oracle=False)
    jobs = plan_jobs(spec, tmp_path, base_dir="B")
    # Seed-major, so that an interrupted sweep has every group at its first seeds.
    assert [(j.group, j.seed, j.hparams_seed) for j in jobs] == [
        (g, s, h) for s in (0, 1) for g in ("erm", "vrex") for h in (0, 1, 2)
    ]
    assert [j.job_id for j in jobs] == [j.job_id for j in plan_jobs(spec, tmp_path / "x", base_dir="B")]
    assert len({j.job_id for j in jobs}) == len(
        jobs
    )  # erm draws differ by hparams_seed alone: still distinct
    assert all(j.folder == tmp_path / "jobs" / j.job_id for j in jobs)
    vrex = [j for j in jobs if j.algorithm == "vrex"]
    assert vrex[0].config["algorithm_options"] == {}  # hparams_seed 0: the defaults
    assert vrex[0].hparams["penalty"] == 10.0
    drawn = [j.config["algorithm_options"]["penalty"] for j in vrex if j.hparams_seed]
    assert len(set(drawn)) == 4 and all(0.1 <= p <= 1e5 for p in drawn)
    assert all(j.config["seed"] == j.seed and j.config["steps"] == 3 for j in jobs)


def test_fixed_options_override_draws_and_change_the_job_id(tmp_path):
    plain = plan_jobs(_spec(algorithms=["iga"], seeds=[0], oracle=False), tmp_path, base_dir="B")
    fixed = plan_jobs(
        _spec(
            algorithms=["iga"],
            seeds=[0],
            oracle=False,
            hparams_draws=1,
            algorithm_options={"iga": {"tau": 2.0}},
        ),
        tmp_path,
        base_dir="B",
    )
    assert [j.config["algorithm_options"]["tau"] for j in fixed] == [2.0, 2.0]
    assert plain[0].job_id != fixed[0].job_id


def test_oracle_trains_on_every_domain_of_an_oracle_suite(tmp_path):
    jobs = plan_jobs(_spec(algorithms=["erm"], seeds=[0]), tmp_path, base_dir="B")
    erm, oracle = jobs
    assert oracle.group == "oracle" and oracle.algorithm == "erm" and oracle.data_config["oracle"] is True
    assert oracle.data_key != erm.data_key
    assert oracle.config["train_domains"] == [
        "math",
        "medicine",
        "law",
        "science",
        "finance",
        "sports",
        "cooking",
        "fictional",
    ]


def test_groups_carry_ablation_labels_data_and_config_changes(tmp_path):
    spec = _spec(
        algorithms=["erm"],
        seeds=[0, 1],
        oracle=False,
        groups=[
            {
                "name": "iga:K=2",
                "algorithm": "iga",
                "set": {"train_domains": ["math", "law"]},
                "seeds": [5],
                "ablation": {"name": "K", "value": 2},
            },
            {"name": "erm:nocue", "algorithm": "erm", "data": {"shortcut": {"enabled": False}}},
        ],
    )
    jobs = plan_jobs(spec, tmp_path, base_dir="B")
    k2 = [j for j in jobs if j.group == "iga:K=2"]
    assert [(j.seed, j.config["train_domains"], j.ablation) for j in k2] == [
        (5, ["math", "law"], {"name": "K", "value": 2})
    ]
    nocue = [j for j in jobs if j.group == "erm:nocue"]
    assert len(nocue) == 2 and nocue[0].data_config["shortcut"]["enabled"] is False
    assert nocue[0].data_key != jobs[0].data_key


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithms": ["nope"]}, "unknown algorithm 'nope'"),
        ({"algorithms": ["erm"], "groups": [{"name": "erm", "algorithm": "iga"}]}, "repeated: ['erm']"),
        ({"seeds": []}, "at least one seed"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_specs_fail_with_the_field(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _spec(**changes)


def test_a_bad_training_field_fails_at_planning_time(tmp_path):
    with pytest.raises(ValueError, match="lr"):
        plan_jobs(_spec(train={**TRAIN, "lr": -1}), tmp_path, base_dir="B")


@pytest.mark.slow
def test_jobs_run_resume_after_interruption_and_are_skipped_when_done(tmp_path, micro_base):
    spec = _spec(algorithms=["erm"], seeds=[0], oracle=False, base_dir=str(micro_base))
    (job,) = prepare_sweep(spec, tmp_path)
    assert (tmp_path / "data" / job.data_key / "manifest.json").exists()
    assert json.loads((tmp_path / "sweep.json").read_text())["jobs"][0]["job_id"] == job.job_id
    assert job_state(job) == "pending"  # its folder holds job.json only
    run_job(job.folder)
    assert job_state(job) == "done"
    result = json.loads((job.folder / "result.json").read_text())
    assert result["eval"]["summary"]["val_accuracy"] is not None
    weights = (job.folder / "adapter" / "adapter_model.safetensors").read_bytes()
    # Killed after training, before evaluation finished: the rerun resumes at the last step and evaluates.
    (job.folder / "done").unlink()
    (job.folder / "result.json").unlink()
    run_job(job.folder)
    assert json.loads((job.folder / "result.json").read_text())["train"]["resumed_from"] == 3
    assert (job.folder / "adapter" / "adapter_model.safetensors").read_bytes() == weights
    assert run_job(job.folder) == {"state": "done"}
    # Preparing again keeps the finished job as it is.
    (again,) = prepare_sweep(spec, tmp_path)
    assert again.job_id == job.job_id and job_state(again) == "done"


@pytest.mark.slow
def test_a_job_killed_before_its_first_checkpoint_restarts_clean(tmp_path, micro_base):
    spec = _spec(algorithms=["erm"], seeds=[0], oracle=False, base_dir=str(micro_base))
    (job,) = prepare_sweep(spec, tmp_path)
    (job.folder / "log.jsonl").write_text('{"step": 99, "loss": 1.0}\n')
    assert job_state(job) == "incomplete"
    run_job(job.folder)
    steps = [json.loads(x)["step"] for x in (job.folder / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


@pytest.mark.slow
def test_cli_runs_a_sweep_with_the_local_launcher_then_skips_it(tmp_path, micro_base):
    spec_path = tmp_path / "spec.yaml"
    import yaml

    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": "cli",
                "data": DATA,
                "train": TRAIN,
                "eval_per_skeleton": 1,
                "algorithms": ["erm", "iga"],
                "seeds": [0],
                "oracle": False,
                "base_dir": str(micro_base),
            }
        )
    )
    out = tmp_path / "sweep"
    runner = CliRunner()
    dry = runner.invoke(app, ["sweep", str(spec_path), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 jobs, 2 to run" in dry.output and not out.exists()
    records = tmp_path / "records"
    args = [
        "sweep",
        str(spec_path),
        "--out",
        str(out),
        "--workers",
        "2",
        "--threads",
        "1",
        "--records",
        str(records),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("jobs/*/done")) == ["done", "done"]
    again = runner.invoke(app, ["sweep", str(spec_path), "--out", str(out), "--dry-run"])
    assert "2 jobs, 0 to run" in again.output and again.output.count("done") >= 2
    # The records hold each finished job's small files only, and carry the sweep to a fresh working folder.
    for job in out.glob("jobs/*"):
        kept = sorted(p.name for p in (records / "jobs" / job.name).iterdir())
        assert kept == ["config.json", "done", "job.json", "log.jsonl", "result.json"]
        assert (records / "jobs" / job.name / "result.json").read_bytes() == (
            job / "result.json"
        ).read_bytes()
    moved = tmp_path / "elsewhere"
    res = runner.invoke(app, ["sweep", str(spec_path), "--out", str(moved), "--records", str(records)])
    assert res.exit_code == 0, res.output
    assert "2 finished job(s) copied back" in res.output and "2 already done, 0 to run" in res.output
    collected = runner.invoke(app, ["collect", str(records), "--out", str(tmp_path / "tables")])
    assert collected.exit_code == 0, collected.output


def test_launcher_commands_and_options(tmp_path):
    (job,) = plan_jobs(_spec(algorithms=["erm"], seeds=[0], oracle=False), tmp_path, base_dir="B")
    assert launchers.job_command(job) == [sys.executable, "-m", "iga", "sweep-job", str(job.folder)]
    assert LocalLauncher(workers=2, threads=3).env()["OMP_NUM_THREADS"] == "3"
    cmd = AccelerateLauncher(num_processes=4, config_file="configs/accelerate/ddp_gpu.yaml").command(job)
    assert cmd[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "configs/accelerate/ddp_gpu.yaml",
        "--num_processes",
        "4",
        "-m",
        "iga",
        "sweep-job",
        str(job.folder),
    ]
    with pytest.raises(ValueError, match="allowed: local, accelerate, submitit"):
        make_launcher("ssh")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        LocalLauncher(workers=0)


def test_submitit_specs_and_a_debug_cluster_submission(tmp_path, monkeypatch):
    jobs = plan_jobs(_spec(algorithms=["erm"], seeds=[0, 1], oracle=False), tmp_path, base_dir="B")
    slurm = SubmititLauncher(partition="gpu", timeout_min=30, gpus_per_node=2, extra={"mem_gb": 40})
    specs = slurm.specs(jobs)
    assert [s["job_id"] for s in specs] == [j.job_id for j in jobs]
    assert specs[0]["command"][-2:] == ["sweep-job", str(jobs[0].folder)]
    assert specs[0]["parameters"] == {
        "name": "iga-sweep",
        "timeout_min": 30,
        "gpus_per_node": 2,
        "cpus_per_task": 8,
        "slurm_array_parallelism": 64,
        "slurm_partition": "gpu",
        "mem_gb": 40,
    }
    # Submit through submitit's in-process debug executor with a stand-in command that marks the job done.
    for j in jobs:
        j.folder.mkdir(parents=True)
    monkeypatch.setattr(
        launchers,
        "job_command",
        lambda j: [sys.executable, "-c", f"open({str(j.folder / 'done')!r}, 'w').close()"],
    )
    ids = SubmititLauncher(cluster="debug", gpus_per_node=0).launch(jobs, say=lambda _: None)
    assert set(ids) == {j.job_id for j in jobs}
    assert all(job_state(j) == "done" for j in jobs)


def test_the_dry_run_base_is_the_one_jobs_train_from(tmp_path):
    from iga.models.gguf import cached_student_dir
    from iga.models.pretrain import base_path, pretrain_config
    from iga.sweeps.sweep import sweep_base_dir

    assert sweep_base_dir(_spec(base_dir="B"), build=True) == "B"
    assert sweep_base_dir(_spec(student="small", data_seed=3), build=False) == str(
        base_path(pretrain_config("small", seed=3))
    )
    assert sweep_base_dir(_spec(student="smollm2-135m"), build=False) == str(
        cached_student_dir("smollm2-135m")
    )
    assert sweep_base_dir(_spec(student=str(tmp_path)), build=True) == str(tmp_path)  # a local checkpoint


def test_pretrain_overrides_give_their_own_base_and_bad_fields_fail_at_load_time():
    import dataclasses

    from iga.models.pretrain import base_path, pretrain_config
    from iga.sweeps.sweep import sweep_base_dir

    plain = sweep_base_dir(_spec(student="tiny"), build=False)
    custom = sweep_base_dir(_spec(student="tiny", pretrain={"steps": 7, "split_digits": True}), build=False)
    expected = dataclasses.replace(pretrain_config("tiny"), steps=7, split_digits=True)
    assert custom == str(base_path(expected)) != plain
    with pytest.raises(Exception, match="pretrain: unknown field 'stpes'; allowed: batch_size, lr, seq_len"):
        _spec(student="tiny", pretrain={"stpes": 7})
    with pytest.raises(ValueError, match="pretrain: only for built-in students"):
        sweep_base_dir(_spec(student="smollm2-135m", pretrain={"steps": 7}), build=False)


def test_micro_base_spec_trains_every_job_from_the_micro_skill_base():
    from iga.models.micro_base import MicroBaseConfig
    from iga.models.micro_base_cache import micro_base_path
    from iga.sweeps.sweep import sweep_base_dir

    spec = _spec(micro_base={}, data={"preset": "micro"})
    assert spec.student == MicroBaseConfig().student == "tiny"  # the jobs' student is the base's
    assert sweep_base_dir(spec, build=False) == str(micro_base_path(MicroBaseConfig()))
    other = _spec(micro_base={"steps": 7}, data={"preset": "micro"})
    assert sweep_base_dir(other, build=False) == str(micro_base_path(MicroBaseConfig(steps=7)))
    assert sweep_base_dir(other, build=False) != sweep_base_dir(spec, build=False)
    with pytest.raises(Exception, match="micro_base: unknown field 'stpes'; allowed: batch_size"):
        _spec(micro_base={"stpes": 7})
    with pytest.raises(Exception, match="micro_base: give either micro_base or pretrain, not both"):
        _spec(micro_base={}, pretrain={"steps": 7})
    with pytest.raises(Exception, match="student: 'small' is not the micro base's student 'tiny'"):
        _spec(micro_base={}, student="small")


def test_search_training_draws_the_lr_of_every_algorithm_alike_and_keeps_it_at_draw_zero(tmp_path):
    spec = _spec(
        algorithms=["erm", "iga"], seeds=[0, 1], hparams_draws=2, oracle=False, search_training=["lr"]
    )
    jobs = plan_jobs(spec, tmp_path, base_dir="B")
    from iga.config import TrainConfig

    lr = {
        (j.group, j.seed, j.hparams_seed): j.config.get("lr", TrainConfig.model_fields["lr"].default)
        for j in jobs
    }
    for seed in (0, 1):
        assert lr[("erm", seed, 0)] == lr[("iga", seed, 0)] == TrainConfig.model_fields["lr"].default
        for draw in (1, 2):
            assert lr[("erm", seed, draw)] == lr[("iga", seed, draw)]  # one draw, every algorithm
            assert 1e-3 <= lr[("erm", seed, draw)] <= 1e-2
    assert len({lr[("erm", s, d)] for s in (0, 1) for d in (1, 2)}) == 4  # seeded per (draw, trial seed)
    assert all(
        j.hparams.get("lr") == j.config["lr"] for j in jobs if j.hparams_seed
    )  # recorded with the hparams
    plain = plan_jobs(
        _spec(algorithms=["erm", "iga"], seeds=[0, 1], hparams_draws=2, oracle=False), tmp_path, base_dir="B"
    )
    assert [j.job_id for j in plain if j.hparams_seed == 0] == [j.job_id for j in jobs if j.hparams_seed == 0]
    with pytest.raises(Exception, match="search_training: unknown 'batch'; allowed: lr"):
        _spec(search_training=["batch"])


def test_lodo_plans_one_job_per_left_out_training_domain_for_groups_with_draws_only(tmp_path):
    spec = _spec(algorithms=["erm", "iga"], seeds=[0], hparams_draws=1, oracle=True, lodo=True)
    jobs = plan_jobs(spec, tmp_path, base_dir="B")
    plain = plan_jobs(spec.model_copy(update={"lodo": False}), tmp_path, base_dir="B")
    main = [j for j in jobs if j.left_out is None]
    assert [j.job_id for j in main] == [j.job_id for j in plain]  # the other jobs keep their ids
    assert jobs[: len(main)] == main  # leave-one-out jobs run last
    lodo = [j for j in jobs if j.left_out is not None]
    train = ["math", "medicine", "law", "science"]
    # erm and iga × 2 draws × 4 training domains; the oracle has none
    assert len(lodo) == 2 * 2 * 4 and {j.group for j in lodo} == {"erm", "iga"}
    for j in lodo:
        assert j.config["train_domains"] == [d for d in train if d != j.left_out]
        assert j.eval_splits == ["val"]
    assert len({j.job_id for j in jobs}) == len(jobs)
    no_draws = plan_jobs(spec.model_copy(update={"hparams_draws": 0}), tmp_path, base_dir="B")
    assert all(j.left_out is None for j in no_draws)


def test_option_defaults_pin_an_algorithms_options_under_every_groups_own():
    from iga.sweeps.sweep import SweepGroup

    groups = [SweepGroup(name="iga:var", algorithm="iga", options={"mask_stat": "variance", "ema_beta": 0.9})]
    spec = _spec(algorithms=["erm", "iga"], seeds=[0], oracle=False, option_defaults={"iga": {"mask_stat": "sign"}},
                 algorithm_options={"iga": {"tau": 3.0}}, groups=groups)  # fmt: skip
    jobs = {j.group: j for j in plan_jobs(spec, "/tmp/s", base_dir="B")}
    assert jobs["iga"].config["algorithm_options"] == {"mask_stat": "sign", "tau": 3.0}
    assert jobs["iga"].hparams["mask_stat"] == "sign" and jobs["iga"].hparams["tau"] == 3.0
    assert jobs["iga:var"].config["algorithm_options"] == {
        "mask_stat": "variance",
        "ema_beta": 0.9,
    }  # its own wins
    assert jobs["erm"].config["algorithm_options"] == {}
    with pytest.raises(Exception, match="option_defaults: unknown algorithm 'igaa'"):
        _spec(option_defaults={"igaa": {"tau": 1.0}})
    # The algorithm's own validation runs at planning time: ema_beta smooths V, which the sign statistic lacks.
    bad = _spec(algorithms=["iga"], seeds=[0], oracle=False, algorithm_options={"iga": {"ema_beta": 0.9}})
    with pytest.raises(
        ValueError, match=r"sweep group 'iga': IGAConfig\.ema_beta must be 0 with mask_stat='sign'"
    ):
        plan_jobs(bad, "/tmp/s", base_dir="B")


def test_a_finished_job_whose_defaults_changed_since_stops_the_sweep(tmp_path):
    spec = _spec(algorithms=["iga"], seeds=[0], oracle=False)
    (job,) = prepare_sweep(spec, tmp_path, base_dir="B")
    (job.folder / "done").write_text("")
    assert prepare_sweep(spec, tmp_path, base_dir="B")[0].job_id == job.job_id  # unchanged: resumes
    entry = json.loads((job.folder / "job.json").read_text())
    recorded = {**entry["hparams"], "mask_stat": "variance"}  # as if it ran under the old default
    del recorded["tau"]  # a field the record lacks is not compared (an option added since)
    (job.folder / "job.json").write_text(json.dumps({**entry, "hparams": recorded}))
    with pytest.raises(ValueError, match=r"1 finished job\(s\) ran other hyper-parameters .* mask_stat: 'variance' "
                                         r"then, 'sign' now\. Pin the option"):  # fmt: skip
        prepare_sweep(spec, tmp_path, base_dir="B")
    pinned = _spec(
        algorithms=["iga"], seeds=[0], oracle=False, option_defaults={"iga": {"mask_stat": "variance"}}
    )
    assert (
        prepare_sweep(pinned, tmp_path, base_dir="B")[0].job_id != job.job_id
    )  # pinned: a new job, no clash


@pytest.mark.slow
def test_cli_keeps_a_base_that_is_not_shipped_with_the_records_and_a_new_machine_trains_from_it(
    tmp_path, monkeypatch
):
    """A micro sweep on a base the package does not ship: the records keep the base, and a machine with an empty
    cache copies it back instead of training another."""
    import yaml

    import iga.models.micro_base as micro_base_module
    import iga.models.micro_base_cache as micro_base_cache

    monkeypatch.setattr(micro_base_cache, "DEFAULT_CACHE", tmp_path / "cache")
    micro = {"student": "micro", "steps": 2, "batch_size": 4, "warmup_steps": 1, "polish_steps": 0}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": "kept_base",
                "data": {"preset": "micro", "skeletons": ["M01_arith_walk"]},
                "micro_base": micro,
                "train": {"steps": 1, "sets_per_batch": 1, "log_every": 1, "checkpoint_every": 1},
                "eval_per_skeleton": 1,
                "algorithms": ["erm"],
                "seeds": [0],
                "oracle": False,
            }
        )
    )
    records, runner = tmp_path / "records", CliRunner()
    res = runner.invoke(
        app, ["sweep", str(spec_path), "--out", str(tmp_path / "a"), "--records", str(records)]
    )
    assert res.exit_code == 0, res.output
    name = micro_base_cache.micro_base_path(micro_base_module.MicroBaseConfig(**micro)).name
    assert "skill base kept in" in " ".join(res.output.split())
    assert (records / "bases" / name / "base.json").is_file()
    # Another machine: an empty cache (at the same path, as `.iga_cache` is on every clone: the base's path is in
    # the job ids); training a base would fail the test.
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setattr(
        micro_base_module, "train_micro_base", lambda *a, **k: pytest.fail("retrained the base")
    )
    res = runner.invoke(
        app,
        ["sweep", str(spec_path), "--out", str(tmp_path / "b"), "--records", str(records)],
        env={"COLUMNS": "1000"},  # one message, one line
    )
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"skill base {name} copied back" in said and "1 already done, 0 to run" in said
    kept = (records / "bases" / name / "model.safetensors").read_bytes()
    assert (tmp_path / "cache" / name / "model.safetensors").read_bytes() == kept
