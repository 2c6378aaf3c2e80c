"""`iga plot`: aggregation over seeds (accuracies, LCS per layer, ablation series, mean curves) and the
figures written from a sweep folder. The shared reader, model selection and mean ± CI are tested in
test_sweep_results.py.
"""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import iga.sweeps.sweep_aggregates as sweep_aggregates_module
import iga.sweeps.sweep_plots as sweep_plots_module
from iga.commands import plot as plot_command
from iga.sweeps.sweep_aggregates import ablation_series, accuracy_table, lcs_per_layer, mean_curve
from iga.sweeps.sweep_plots import plot_sweep, render_sweep_plots
from iga.sweeps.sweep_results import JobRecord, load_finished, select_models

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
# Closed forms of t(0.975, df): df=1 is the Cauchy quantile tan(0.475π); df=2 is 0.95·√(2/(4p(1-p))), p=0.975.
T_DF1 = math.tan(0.475 * math.pi)
T_DF2 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))


def _write_job(
    root: Path,
    job_id: str,
    *,
    group: str,
    seed: int,
    accuracies: tuple[float | None, float | None, float | None],
    ablation: dict | None = None,
    hparams: dict | None = None,
    log: list[dict] | None = None,
    lcs: dict | None = None,
    done: bool = True,
    hparams_seed: int = 0,
    val_accuracy: float | None = None,
) -> Path:
    job_dir = root / "jobs" / job_id
    job_dir.mkdir(parents=True)
    algorithm = group.split(":")[0]
    job = {
        "job_id": job_id,
        "group": group,
        "algorithm": algorithm,
        "seed": seed,
        "hparams_seed": hparams_seed,
        "hparams": hparams or {},
        "ablation": ablation,
        "data_key": "d0",
        "config": {"algorithm": algorithm, "seed": seed},
    }
    (job_dir / "job.json").write_text(json.dumps(job))
    id_acc, ood_acc, depth_acc = accuracies
    summary = {"id_accuracy": id_acc, "ood_accuracy": ood_acc, "ood_depth_accuracy": depth_acc}
    summary["val_accuracy"] = val_accuracy
    result = {
        "config": job["config"],
        "train": {"step_time_s": 1.0},
        "eval": {"summary": summary, "lcs": lcs},
    }
    (job_dir / "result.json").write_text(json.dumps(result))
    if log is not None:
        (job_dir / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))
    if done:
        (job_dir / "done").write_text("")
    return job_dir


def selected_runs(sweep_dir: Path) -> list[JobRecord]:
    """The runs a figure is drawn from: finished jobs, one hparams draw per (group, seed)."""
    return select_models(load_finished(sweep_dir)[1])[0]


def _loss_log(losses: list[float], *, mask: list[float] | None = None) -> list[dict]:
    rows = []
    for i, loss in enumerate(losses):
        row = {"step": 10 * (i + 1), "loss": loss, "lr": 0.001, "grad_norm": 1.0}
        if mask is not None:
            row |= {"mask_mean": mask[i], "mask_below_half": 1 - mask[i], "vhat_mean": 0.5, "tau": 10.0}
        rows.append(row)
    return rows


def _lcs(per_layer: dict[str, float], permutation_mean: float) -> dict:
    return {
        "canonical": per_layer[max(per_layer, key=int)],
        "per_layer": per_layer,
        "permutation_mean": permutation_mean,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """erm and iga × 3 seeds, a tau ablation (3: two seeds, 30: one seed) and one unfinished job."""
    root = tmp_path / "sweep"
    erm_acc = [(0.5, 0.2, 0.1), (0.6, 0.3, 0.1), (0.7, 0.4, 0.1)]
    iga_acc = [(0.6, 0.3, 0.2), (0.6, 0.4, 0.2), (0.6, 0.5, None)]
    for seed in range(3):
        _write_job(
            root,
            f"erm{seed}",
            group="erm",
            seed=seed,
            accuracies=erm_acc[seed],
            log=_loss_log([4.0 + seed, 3.0 + seed, 2.0 + seed]),
            lcs=_lcs({"0": 0.1 * seed, "1": 0.5, "10": 0.9}, 0.8),
        )
        _write_job(
            root,
            f"iga{seed}",
            group="iga",
            seed=seed,
            accuracies=iga_acc[seed],
            hparams={"tau": 10},
            log=_loss_log([5.0, 3.0, 1.0], mask=[0.2, 0.4, 0.6]),
            lcs=_lcs({"0": 0.0, "1": 0.3, "10": 0.6}, 1.0),
        )
    for seed, (acc, mask) in enumerate([((0.55, 0.25, 0.1), 0.1), ((0.65, 0.35, 0.1), 0.3)]):
        _write_job(
            root,
            f"tau3_{seed}",
            group="iga:tau=3",
            seed=seed,
            accuracies=acc,
            ablation={"name": "tau", "value": 3},
            hparams={"tau": 3},
            log=_loss_log([5.0, 4.0, 3.0], mask=[mask] * 3),
        )
    _write_job(
        root,
        "tau30_0",
        group="iga:tau=30",
        seed=0,
        accuracies=(0.4, 0.45, 0.1),
        ablation={"name": "tau", "value": 30},
        hparams={"tau": 30},
        log=_loss_log([5.0, 4.0, 3.0], mask=[0.9] * 3),
    )
    # Unfinished: its 0.99 accuracies must not move any mean.
    _write_job(root, "erm9", group="erm", seed=9, accuracies=(0.99, 0.99, 0.99), done=False)
    return root


# ----------------------------------------------------------------------------------------------- aggregation


def test_mean_curve_uses_steps_shared_by_all_seeds():
    seed0 = [{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0}, {"step": 30, "loss": 1.0}]
    seed1 = [{"step": 10, "loss": 5.0}, {"step": 20, "loss": 4.0}]  # stopped early
    seed2 = [{"step": 10, "lr": 0.1}]  # never logged the key: not a seed of this curve
    curve = mean_curve([seed0, seed1, seed2], "loss")
    assert curve.steps == [10, 20]
    assert curve.mean == [4.0, 3.0]
    assert curve.low == [3.0, 2.0] and curve.high == [5.0, 4.0]
    assert curve.n == 2
    # A resumed run logs step 20 twice: the last row wins.
    resumed = [{"step": 20, "loss": 9.0}, {"step": 20, "loss": 7.0}]
    assert mean_curve([resumed], "loss").mean == [7.0]
    assert mean_curve([seed2], "loss").steps == []


def test_figures_use_finished_jobs_only(sweep):
    runs = selected_runs(sweep)
    assert sorted(r.folder.name for r in runs) == sorted(
        ["erm0", "erm1", "erm2", "iga0", "iga1", "iga2", "tau3_0", "tau3_1", "tau30_0"]
    )


def test_accuracy_table_main_comparison(sweep):
    table = accuracy_table(selected_runs(sweep))
    assert list(table) == ["erm", "iga"]  # ablation groups are not bars
    erm_ood = table["erm"]["ood_accuracy"]
    assert erm_ood.mean == pytest.approx(0.3) and erm_ood.n == 3
    assert erm_ood.ci95 == pytest.approx(T_DF2 * 0.1 / math.sqrt(3))
    # iga ID accuracy is 0.6 for every seed: zero spread, zero half-width.
    assert table["iga"]["id_accuracy"].ci95 == pytest.approx(0.0)
    # one null depth accuracy: mean of the two others, t with df = 1.
    depth = table["iga"]["ood_depth_accuracy"]
    assert (depth.n, depth.mean, depth.ci95) == (2, pytest.approx(0.2), pytest.approx(0.0))


def test_lcs_per_layer_sorts_layers_numerically_and_averages_the_baseline(sweep):
    table, baseline = lcs_per_layer(selected_runs(sweep))
    assert list(table["erm"]) == [0, 1, 10]
    assert table["erm"][0].mean == pytest.approx(0.1)  # (0.0 + 0.1 + 0.2) / 3
    assert table["iga"][10].mean == pytest.approx(0.6)
    assert baseline == pytest.approx((3 * 0.8 + 3 * 1.0) / 6)


def test_ablation_series_sorted_numerically_with_the_main_baseline(sweep):
    series = ablation_series(selected_runs(sweep))
    points = series["tau"]
    # 3 < 10 < 30 numerically (as strings "10" would come first); 10 is the main "iga" group (hparams tau=10).
    assert [p.label for p in points] == ["3", "10", "30"]
    assert [p.groups for p in points] == [("iga:tau=3",), ("iga",), ("iga:tau=30",)]
    assert [p.baseline for p in points] == [False, True, False]
    assert [p.n_runs for p in points] == [2, 3, 1]
    tau3 = points[0].metrics["ood_accuracy"]
    assert tau3.mean == pytest.approx(0.3) and tau3.n == 2
    assert tau3.ci95 == pytest.approx(T_DF1 * math.sqrt(0.005) / math.sqrt(2))
    assert points[1].metrics["ood_accuracy"].mean == pytest.approx(0.4)
    assert points[2].metrics["id_accuracy"].ci95 is None  # one seed: no interval


def test_one_hparams_draw_per_seed_chosen_by_validation_accuracy(tmp_path):
    root = tmp_path / "sweep"
    # seed 0: draw 1 has the better val accuracy (0.7 > 0.6) though draw 0 has the better test accuracy.
    _write_job(root, "a", group="iga", seed=0, accuracies=(0.9, 0.9, 0.9), hparams_seed=0, val_accuracy=0.6)
    _write_job(root, "b", group="iga", seed=0, accuracies=(0.5, 0.5, 0.5), hparams_seed=1, val_accuracy=0.7)
    # seed 1: no val accuracy anywhere: hparams_seed 0 is kept.
    _write_job(root, "c", group="iga", seed=1, accuracies=(0.3, 0.3, 0.3), hparams_seed=1)
    _write_job(root, "d", group="iga", seed=1, accuracies=(0.1, 0.1, 0.1), hparams_seed=0)
    chosen = selected_runs(root)
    assert sorted(r.folder.name for r in chosen) == ["b", "d"]
    ood = accuracy_table(chosen)["iga"]["ood_accuracy"]
    assert (ood.n, ood.mean) == (2, pytest.approx(0.3))  # (0.5 + 0.1) / 2, not a mean over four draws


# ----------------------------------------------------------------------------------------------- figures


def test_plot_sweep_writes_every_figure_in_both_formats(sweep):
    paths = plot_sweep(sweep)
    names = ["accuracy", "curves", "mask", "lcs_layers", "ablations"]
    assert paths == [sweep / "plots" / f"{n}.{fmt}" for n in names for fmt in ("png", "svg")]
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(PNG_HEADER), path
        else:
            assert b"<svg" in data, path
    accuracy_svg = (sweep / "plots" / "accuracy.svg").read_text()
    assert "erm (n=3)" in accuracy_svg and "iga (n=3)" in accuracy_svg
    assert "iga:tau=3" not in accuracy_svg
    mask_svg = (sweep / "plots" / "mask.svg").read_text()
    # every group that logged mask statistics, ablations included, and nothing for erm
    assert "iga:tau=3 (n=2)" in mask_svg and "iga:tau=30 (n=1)" in mask_svg and "iga (n=3)" in mask_svg
    assert "erm" not in mask_svg
    assert "(iga, n=3)" in (sweep / "plots" / "ablations.svg").read_text()  # the baseline point's tick
    assert "permutation baseline (0.900)" in (sweep / "plots" / "lcs_layers.svg").read_text()


def test_sweep_without_mask_logs_skips_the_mask_figure(tmp_path):
    root = tmp_path / "sweep"
    for seed in range(2):
        _write_job(
            root, f"erm{seed}", group="erm", seed=seed, accuracies=(0.5, 0.4, 0.3), log=_loss_log([2.0, 1.0])
        )
    out = tmp_path / "figs"
    report = render_sweep_plots(root, out_dir=out, formats=["png"])
    assert [p.name for p in report.written] == ["accuracy.png", "curves.png"]
    assert set(report.skipped) == {"shortcut", "cue_vs_learning", "mask", "lcs_layers", "ablations"}
    assert "mask_mean" in report.skipped["mask"] and "val_nocue" in report.skipped["shortcut"]
    assert not (out / "mask.png").exists()


def test_shortcut_figure_pairs_cues_shown_and_stripped(tmp_path):
    root = tmp_path / "sweep"
    for group, follow in (("erm", 0.8), ("iga", 0.3)):
        for seed in range(2):
            job = _write_job(root, f"{group}{seed}", group=group, seed=seed, accuracies=(0.2, 0.1, 0.1))
            result = json.loads((job / "result.json").read_text())
            result["eval"]["summary"].update(
                val_accuracy=0.5, val_nocue_accuracy=0.2, cue_follow=follow, cue_follow_nocue=0.3
            )
            (job / "result.json").write_text(json.dumps(result))
    report = render_sweep_plots(root, out_dir=tmp_path / "figs", formats=["svg"])
    assert "shortcut" not in report.skipped
    svg = (tmp_path / "figs" / "shortcut.svg").read_text()
    assert "cues stripped" in svg and "cue hidden" in svg and "Answers equal to a wrong cue" in svg
    scatter = (tmp_path / "figs" / "cue_vs_learning.svg").read_text()
    assert "cue gain: with − without cues (points)" in scatter and "iga" in scatter


def test_ablation_figure_adds_shortcut_reliance_when_jobs_evaluated_val_nocue(tmp_path):
    root = tmp_path / "sweep"
    jobs = [("iga", 0, None, 0.5, 0.2), ("iga", 1, None, 0.4, 0.3), ("iga:ema=0.9", 0, 0.9, 0.3, 0.25)]
    for group, seed, value, val, nocue in jobs:
        ablation = None if value is None else {"name": "ema_beta", "value": value}
        job = _write_job(
            root, f"{group}{seed}", group=group, seed=seed, accuracies=(0.2, 0.1, 0.1), ablation=ablation,
            hparams={"ema_beta": 0.0},
        )  # fmt: skip
        result = json.loads((job / "result.json").read_text())
        result["eval"]["summary"].update(val_accuracy=val, val_nocue_accuracy=nocue)
        (job / "result.json").write_text(json.dumps(result))
    points = ablation_series(selected_runs(root))["ema_beta"]
    assert [p.label for p in points] == ["0", "0.9"]
    baseline, ema = points
    assert baseline.metrics["cue_gain"].mean == pytest.approx(0.2)  # (0.3 + 0.1) / 2, paired per run
    assert baseline.metrics["val_nocue_accuracy"].mean == pytest.approx(0.25)
    assert ema.metrics["cue_gain"].mean == pytest.approx(0.05) and ema.metrics["cue_gain"].n == 1
    render_sweep_plots(root, out_dir=tmp_path / "figs", formats=["svg"])
    svg = (tmp_path / "figs" / "ablations.svg").read_text()
    assert "ema_beta: shortcut reliance" in svg and "cue gain (pts)" in svg


def test_plain_run_folders_are_grouped_by_algorithm(tmp_path):
    # The layout of runs/demo: <dir>/<algorithm>/result.json, no jobs/ folder.
    for algorithm, acc in (("erm", 0.25), ("iga", 0.5)):
        run_dir = tmp_path / "demo" / algorithm
        run_dir.mkdir(parents=True)
        summary = {"id_accuracy": acc, "ood_accuracy": acc, "ood_depth_accuracy": acc}
        result = {"config": {"algorithm": algorithm, "seed": 0}, "eval": {"summary": summary, "lcs": None}}
        (run_dir / "result.json").write_text(json.dumps(result))
    table = accuracy_table(selected_runs(tmp_path / "demo"))
    assert {g: cells["ood_accuracy"].mean for g, cells in table.items()} == {"erm": 0.25, "iga": 0.5}
    assert [p.name for p in plot_sweep(tmp_path / "demo", formats=("svg",))] == ["accuracy.svg"]


def test_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no jobs"):
        plot_sweep(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing"):
        plot_sweep(tmp_path / "missing")
    bad = _write_job(tmp_path / "bad", "j0", group="erm", seed=0, accuracies=(0.1, 0.1, 0.1))
    (bad / "job.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"j0/job\.json.*invalid JSON"):
        plot_sweep(tmp_path / "bad")
    sweep_dir = tmp_path / "ok"
    _write_job(sweep_dir, "j0", group="erm", seed=0, accuracies=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="format must be one of"):
        plot_sweep(sweep_dir, formats=("jpg",))
    (sweep_dir / "jobs" / "j0" / "job.json").write_text(json.dumps({"job_id": "j0", "seed": 0}))
    with pytest.raises(ValueError, match=r"j0/job\.json: group: must be a non-empty string"):
        plot_sweep(sweep_dir)
    (sweep_dir / "jobs" / "j0" / "job.json").write_text(
        json.dumps({"job_id": "j0", "group": "erm", "seed": 0})
    )
    (sweep_dir / "jobs" / "j0" / "result.json").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"j0/result\.json: missing although .*j0/done marks the job done"
    ):
        plot_sweep(sweep_dir)


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_prints_written_paths(sweep, tmp_path):
    out = tmp_path / "cli_out"
    result = CliRunner().invoke(plot_command.app, [str(sweep), "--out", str(out), "--format", "png"])
    assert result.exit_code == 0, result.output
    printed = [line for line in result.stdout.splitlines() if line.strip()]
    assert printed == [
        str(out / f"{n}.png") for n in ("accuracy", "curves", "mask", "lcs_layers", "ablations")
    ]


def test_cli_empty_folder_is_a_user_error(tmp_path):
    result = CliRunner().invoke(plot_command.app, [str(tmp_path)])
    assert result.exit_code == 2
    assert "no jobs" in " ".join(result.output.split())  # rich wraps long lines


@pytest.mark.parametrize("module", [sweep_plots_module, sweep_aggregates_module])
def test_doctests(module):
    outcome = doctest.testmod(module)
    assert outcome.attempted >= 2 and outcome.failed == 0


@pytest.mark.parametrize(
    ("n_ablations", "nocue", "shape"), [(5, False, (2, 4)), (5, True, (4, 4)), (2, True, (2, 2))]
)
def test_ablation_figure_wraps_into_bands_of_four(tmp_path, n_ablations, nocue, shape):
    root = tmp_path / "sweep"
    names = [f"opt{i}" for i in range(n_ablations)]
    for seed in (0, 1):
        _write_job(root, f"iga{seed}", group="iga", seed=seed, accuracies=(0.2, 0.1, 0.1))
    for name in names:
        job = _write_job(
            root, f"iga-{name}", group=f"iga:{name}=1", seed=0, accuracies=(0.2, 0.1, 0.1),
            ablation={"name": name, "value": 1},
        )  # fmt: skip
        if nocue:
            result = json.loads((job / "result.json").read_text())
            result["eval"]["summary"].update(val_accuracy=0.3, val_nocue_accuracy=0.2)
            (job / "result.json").write_text(json.dumps(result))
    runs = selected_runs(root)
    fig = sweep_plots_module._ablation_figure(runs, sweep_plots_module._colours(["iga"]))
    rows, columns = shape
    assert fig.axes[0].get_gridspec().get_geometry() == (rows, columns)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n_ablations * (2 if nocue else 1)
    titles = {ax.get_title() for ax in visible}
    assert {f"Ablation: {n}" for n in names} <= titles
    sweep_plots_module.pyplot().close(fig)
