"""``iga collect``: cells, derived columns, tables and the three renderers on hand-made sweeps.

The shared reader, model selection and mean ± CI have their own tests in test_sweep_results.py; here they are
exercised through :func:`collect`.
"""

from __future__ import annotations

import csv
import doctest
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import iga.sweeps.collect as collect_module
import iga.sweeps.collect_render as collect_render_module
from iga.commands import collect as collect_command
from iga.sweeps.collect import MODEL_SELECTION, collect
from iga.sweeps.collect_render import format_cell, latex_escape
from iga.sweeps.sweep_results import load_sweep, mean_ci

DEMO_RUNS = Path(__file__).resolve().parents[2] / "runs" / "demo"
# t(0.975, 2) from any t table; the CI of 0.2, 0.3, 0.4 (sd 0.1) is 4.303 * 0.1 / sqrt(3) = 0.2484.
T_975_DF2 = 4.302652729749464


def write_job(
    root: Path,
    job_id: str,
    group: str,
    seed: int,
    *,
    ood: float | None = 0.5,
    id_acc: float | None = 0.6,
    val: float | None = None,
    lcs: float | None = 0.2,
    step_time: float | None = 1.0,
    hparams_seed: int = 0,
    hparams: dict[str, Any] | None = None,
    ablation: dict[str, Any] | None = None,
    families: dict[str, dict[str, float | None]] | None = None,
    done: bool = True,
) -> Path:
    """One job folder as `iga sweep` leaves it (job.json, log.jsonl, result.json, done)."""
    job_dir = root / "jobs" / job_id
    job_dir.mkdir(parents=True)
    entry = {
        "job_id": job_id,
        "group": group,
        "algorithm": group.split(":")[0],
        "seed": seed,
        "hparams_seed": hparams_seed,
        "hparams": hparams or {},
        "ablation": ablation,
        "data_key": "abc",
        "config": {"algorithm": group.split(":")[0], "seed": seed},
    }
    (job_dir / "job.json").write_text(json.dumps(entry))
    (job_dir / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    gap = None if ood is None or id_acc is None else id_acc - ood
    summary = {"id_accuracy": id_acc, "ood_accuracy": ood, "gap": gap, "by_family": families or {}}
    if val is not None:
        summary["val_accuracy"] = val
    result = {
        "config": entry["config"],
        "train": {"step_time_s": step_time, "steps": 10},
        "eval": {"summary": summary, "lcs": None if lcs is None else {"canonical": lcs}},
    }
    (job_dir / "result.json").write_text(json.dumps(result))
    if done:
        (job_dir / "done").write_text("")
    return job_dir


def row_of(markdown: str, label: str, table: str = "Overall") -> list[str]:
    """The cells of the row ``label`` in the Markdown table titled ``table``."""
    section = markdown.split(f"## {table}\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in table {table!r}:\n{section}")


# ---- cells -------------------------------------------------------------------------------------------------


def test_three_seed_cell_is_mean_and_student_t_half_width():
    # mean 0.3, half-width 4.303 * 0.1 / sqrt(3) = 0.2484: in percent, one decimal.
    assert format_cell(mean_ci([0.2, 0.3, 0.4])) == "30.0 ± 24.8"
    assert format_cell(mean_ci([0.2, 0.3, 0.4]), scale=1.0, digits=3) == "0.300 ± 0.248"


def test_negative_zero_is_printed_without_its_sign():
    # -0.00004 rounds to "-0.0" with Python's format; a table cell says "0.0".
    assert format_cell(mean_ci([-0.0000004])) == "0.0 (n=1)†"


def test_null_values_are_skipped_and_empty_cells_show_a_dash():
    stat = mean_ci([None, 0.25, None])
    assert (stat.mean, stat.ci95, stat.n) == (0.25, None, 1)
    assert format_cell(stat) == "25.0 (n=1)†"
    assert format_cell(mean_ci([None])) == "–"
    assert format_cell(mean_ci([0.244947786, 0.3]), scale=1.0, digits=3).startswith("0.272 ± ")


def test_collect_cells_for_three_seeds_and_a_single_seed_with_warnings(tmp_path):
    for seed, ood in enumerate((0.2, 0.3, 0.4)):
        write_job(tmp_path, f"erm{seed}", "erm", seed, ood=ood, id_acc=0.5, lcs=0.1 * (seed + 1))
    write_job(tmp_path, "iga0", "iga", 0, ood=0.45, id_acc=0.5, lcs=0.25)
    out = collect(tmp_path)

    erm = row_of(out.markdown, "erm")
    # No val_accuracy in these jobs: the validation column shows "–".
    assert erm[:6] == ["3", "–", "50.0 ± 0.0", "30.0 ± 24.8", "20.0 ± 24.8", "0.200 ± 0.248"]
    assert row_of(out.markdown, "iga")[:6] == [
        "1",
        "–",
        "50.0 (n=1)†",
        "45.0 (n=1)†",
        "5.0 (n=1)†",
        "0.250 (n=1)†",
    ]
    assert out.warnings == ["Overall: † fewer than 3 seeds: iga (all cells, n=1)"]
    assert "† fewer than 3 seeds: iga (all cells, n=1)" in out.markdown
    assert out.summary["erm"]["ood_accuracy"]["mean"] == pytest.approx(0.3)
    assert out.summary["erm"]["ood_accuracy"]["ci95"] == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert out.summary["iga"]["ood_accuracy"] == {"mean": 0.45, "ci95": None, "n": 1}
    assert out.summary["iga"]["n_seeds"] == 1


def test_warning_lists_each_column_when_seed_counts_differ(tmp_path):
    for seed in range(3):
        write_job(tmp_path, f"erm{seed}", "erm", seed)
    write_job(tmp_path, "iga0", "iga", 0, lcs=0.3)
    write_job(tmp_path, "iga1", "iga", 1, lcs=None)  # no LCS behind this run: skipped, not zero
    out = collect(tmp_path, formats=())
    assert out.warnings == [
        "Overall: † fewer than 3 seeds: iga (ID acc % n=2, OOD-surface acc % n=2, ID–OOD gap (pts) n=2, LCS ↓ n=1)"
    ]
    assert out.summary["iga"]["lcs"] == {"mean": 0.3, "ci95": None, "n": 1}


# ---- model selection and unfinished jobs -------------------------------------------------------------------


def test_model_selection_follows_validation_not_test_accuracy(tmp_path):
    write_job(tmp_path, "a", "iga", 0, hparams_seed=0, val=0.50, ood=0.90)
    write_job(tmp_path, "b", "iga", 0, hparams_seed=1, val=0.70, ood=0.10)
    write_job(tmp_path, "c", "iga", 1, hparams_seed=0, val=0.80, ood=0.30)
    write_job(tmp_path, "d", "iga", 1, hparams_seed=1, val=0.60, ood=0.95)
    out = collect(tmp_path, formats=())
    assert sorted((r.seed, r.hparams_seed) for r in out.selected) == [(0, 1), (1, 0)]
    assert out.summary["iga"]["ood_accuracy"]["mean"] == pytest.approx((0.10 + 0.30) / 2)
    assert MODEL_SELECTION in out.markdown
    assert "jobs: 4 finished (2 kept after model selection), 0 unfinished (not used)" in out.markdown


def test_model_selection_notes_are_printed_under_the_title(tmp_path):
    write_job(tmp_path, "m0", "iga", 0, hparams_seed=0, ood=0.4)
    write_job(tmp_path, "m1", "iga", 0, hparams_seed=1, ood=0.9)
    out = collect(tmp_path, formats=())
    assert out.notes == [
        "iga, seed 0: no val_accuracy in any of its 2 hparams draws; kept hparams_seed 0 without selection"
    ]
    assert "note: iga, seed 0: no val_accuracy" in out.markdown
    assert out.summary["iga"]["ood_accuracy"]["mean"] == 0.4


def test_unfinished_jobs_are_counted_but_not_used(tmp_path):
    write_job(tmp_path, "e0", "erm", 0, ood=0.2)
    write_job(tmp_path, "e1", "erm", 1, ood=0.4)
    write_job(tmp_path, "e2", "erm", 2, ood=0.99, done=False)  # result.json may exist mid-run: still unused
    out = collect(tmp_path, formats=())
    assert (out.n_finished, out.n_unfinished) == (2, 1)
    assert out.summary["erm"]["n_seeds"] == 2
    assert out.summary["erm"]["ood_accuracy"]["mean"] == pytest.approx(0.3)
    assert "2 finished (2 kept after model selection), 1 unfinished (not used)" in out.markdown


def test_no_finished_job_and_no_job_are_errors(tmp_path):
    write_job(tmp_path / "running", "e0", "erm", 0, done=False)
    with pytest.raises(ValueError, match="none of its 1 jobs has finished"):
        collect(tmp_path / "running")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no jobs"):
        collect(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing-dir"):
        collect(tmp_path / "missing-dir")


# ---- derived columns ---------------------------------------------------------------------------------------


def test_oracle_gap_share_and_step_time_relative_to_erm(tmp_path):
    write_job(tmp_path, "e0", "erm", 0, ood=0.1, step_time=0.5)
    write_job(tmp_path, "e1", "erm", 1, ood=0.3, step_time=0.7)  # ERM seed means: OOD 0.2, step 0.6 s
    write_job(tmp_path, "i0", "iga", 0, ood=0.25, step_time=0.9)
    write_job(tmp_path, "i1", "iga", 1, ood=0.35, step_time=0.9)  # IGA: OOD 0.3, step 0.9 s
    write_job(tmp_path, "o0", "oracle", 0, ood=0.6, step_time=0.6)
    out = collect(tmp_path, formats=("md",))
    # (0.3 - 0.2) / (0.6 - 0.2) = 0.25 of the gap closed; 0.9 / 0.6 = 1.5 × ERM's step time.
    assert out.summary["iga"]["oracle_gap_closed"] == pytest.approx(0.25)
    assert out.summary["iga"]["step_time_rel_erm"] == pytest.approx(1.5)
    assert out.summary["erm"]["oracle_gap_closed"] == pytest.approx(0.0)
    assert out.summary["oracle"]["oracle_gap_closed"] == pytest.approx(1.0)
    assert row_of(out.markdown, "iga")[6:] == ["25.0", "1.50×"]
    assert row_of(out.markdown, "oracle")[6:] == ["100.0", "1.00×"]
    # Table order: erm first, oracle last.
    labels = [line.split("|")[1].strip() for line in out.markdown.splitlines() if line.startswith("| ")][1:4]
    assert labels == ["erm", "iga", "oracle"]


def test_oracle_gap_share_is_a_dash_when_the_gap_is_tiny_or_a_group_is_missing(tmp_path):
    write_job(tmp_path / "tiny", "e0", "erm", 0, ood=0.200)
    write_job(tmp_path / "tiny", "o0", "oracle", 0, ood=0.204)
    write_job(tmp_path / "tiny", "i0", "iga", 0, ood=0.202)
    out = collect(tmp_path / "tiny", formats=())
    assert out.summary["iga"]["oracle_gap_closed"] is None
    assert row_of(out.markdown, "iga")[6] == "–"
    assert "(20.4%) is not more than 0.5 points above ERM's (20.0%)" in out.markdown

    write_job(tmp_path / "no-oracle", "e0", "erm", 0, ood=0.2)
    out = collect(tmp_path / "no-oracle", formats=())
    assert out.summary["erm"]["oracle_gap_closed"] is None
    assert "– because the sweep has no group named 'oracle'." in out.markdown


def test_groups_whose_runs_evaluated_identically_are_named_under_the_overall_table(tmp_path):
    # andmask and sandmask agree on both seeds; cagrad agrees on seed 0 only; erm ran one seed of the same numbers.
    for group, prefix in (("andmask", "a"), ("sandmask", "s")):
        write_job(tmp_path, f"{prefix}0", group, 0, ood=0.3, step_time=0.5)
        write_job(tmp_path, f"{prefix}1", group, 1, ood=0.4, step_time=0.6)  # step times never compared
    write_job(tmp_path, "c0", "cagrad", 0, ood=0.3)
    write_job(tmp_path, "c1", "cagrad", 1, ood=0.41)
    # fishr: the same answers on both seeds, an LCS 0.01 away on one (more than three decimals can hide)
    write_job(tmp_path, "f0", "fishr", 0, ood=0.3)
    write_job(tmp_path, "f1", "fishr", 1, ood=0.4, lcs=0.21)
    # pcgrad: the same answers, its LCS 0.0001 away (rounding of the hidden states): still the same
    write_job(tmp_path, "p0", "pcgrad", 0, ood=0.3, lcs=0.2001)
    write_job(tmp_path, "p1", "pcgrad", 1, ood=0.4)
    write_job(tmp_path, "e0", "erm", 0, ood=0.3)
    write_job(tmp_path, "x0", "iga:tau=1", 0, ood=0.3, ablation={"name": "tau", "value": 1})
    write_job(tmp_path, "x1", "iga:tau=1", 1, ood=0.4, ablation={"name": "tau", "value": 1})
    out = collect(tmp_path, formats=("md",))
    note = (
        "andmask, pcgrad and sandmask: the same answers on each of their 2 seeds (every split, every accuracy"
    )
    overall = out.markdown.split("## Overall")[1].split("\n## ")[0]
    assert note in overall
    assert out.markdown.count("the same answers") == 1  # not cagrad, fishr, erm or the ablation group
    ablation = out.markdown.split("## Ablation: tau")[1].split("\n## ")[0]
    assert "the same answers" not in ablation


def test_step_time_is_a_dash_without_an_erm_group(tmp_path):
    write_job(tmp_path, "i0", "iga", 0, step_time=0.9)
    out = collect(tmp_path, formats=())
    assert out.summary["iga"]["step_time_rel_erm"] is None
    assert row_of(out.markdown, "iga")[6] == "–"
    assert "no group named 'erm' and 'oracle'" in out.markdown


# ---- families and ablations --------------------------------------------------------------------------------


def test_per_family_tables_average_each_family_over_seeds(tmp_path):
    fam = {"IsoArith": {"id_accuracy": 0.5, "ood_accuracy": 0.2, "gap": 0.3}}
    write_job(tmp_path, "e0", "erm", 0, families={**fam, "IsoState": {"ood_accuracy": None}})
    write_job(
        tmp_path, "e1", "erm", 1, families={"IsoArith": {"id_accuracy": 0.7, "ood_accuracy": 0.4, "gap": 0.3}}
    )
    out = collect(tmp_path, formats=())
    assert row_of(out.markdown, "erm", "OOD-surface accuracy by family (%)") == [
        f"30.0 ± {100 * 12.706204736174698 * math.sqrt(0.02) / math.sqrt(2):.1f}†",
        "–",
        "50.0 ± 0.0†",
    ]
    assert out.summary["erm"]["by_family"]["IsoArith"]["id_accuracy"]["mean"] == pytest.approx(0.6)
    assert out.summary["erm"]["by_family"]["IsoState"]["ood_accuracy"] == {"mean": None, "ci95": None, "n": 0}


def test_ablation_tables_order_rows_by_value_and_include_the_baseline(tmp_path):
    write_job(tmp_path, "e0", "erm", 0)
    write_job(tmp_path, "i0", "iga", 0, ood=0.50, hparams={"tau": 5})
    for value, ood in ((10, 0.40), (1, 0.30), (3, 0.45)):
        write_job(
            tmp_path, f"t{value}", f"iga:tau={value}", 0, ood=ood, ablation={"name": "tau", "value": value}
        )
    write_job(tmp_path, "k2", "iga:K=2", 0, ablation={"name": "K", "value": 2})
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "isobench-ablations", "jobs": []}))
    out = collect(tmp_path, formats=())
    assert out.markdown.startswith("# Results: isobench-ablations\n")
    titles = [t.title for t in out.tables]
    assert titles == ["Overall", "Ablation: K", "Ablation: tau", "Cost"]
    tau = out.tables[2]
    assert [row[0] for row in tau.rows] == ["iga:tau=1", "iga:tau=3", "iga (baseline, tau=5)", "iga:tau=10"]
    assert [row[4] for row in tau.rows] == ["30.0 (n=1)†", "45.0 (n=1)†", "50.0 (n=1)†", "40.0 (n=1)†"]
    # The baseline's hparams do not record K: it goes first.
    assert [row[0] for row in out.tables[1].rows] == ["iga (baseline)", "iga:K=2"]
    # Main tables never show ablation groups; summary and CSV have every group.
    assert [row[0] for row in out.tables[0].rows] == ["erm", "iga"]
    assert out.summary["iga:tau=3"]["ablation"] == {"name": "tau", "value": 3}
    only_tau = collect(tmp_path, formats=(), ablation="tau")
    assert [t.title for t in only_tau.tables] == ["Overall", "Ablation: tau", "Cost"]
    assert "iga:K=2" not in only_tau.summary
    with pytest.raises(ValueError, match="ablation: lr not in the sweep"):
        collect(tmp_path, formats=(), ablation=["lr"])


def test_ablation_rows_with_named_values_follow_the_figures_order(tmp_path):
    # Numbers, then "none" (the option switched off), then other names alphabetically, as in `iga plot`.
    write_job(tmp_path, "i0", "iga", 0)  # records no "schedule": the baseline row goes first
    for value in ("linear", "none", 0.5, "cos"):
        write_job(
            tmp_path, f"s{value}", f"iga:schedule={value}", 0, ablation={"name": "schedule", "value": value}
        )
    [table] = [t for t in collect(tmp_path, formats=()).tables if t.title == "Ablation: schedule"]
    assert [row[0] for row in table.rows] == [
        "iga (baseline)",
        "iga:schedule=0.5",
        "iga:schedule=none",
        "iga:schedule=cos",
        "iga:schedule=linear",
    ]


# ---- renderers and files -----------------------------------------------------------------------------------


def test_markdown_latex_and_csv_files(tmp_path):
    for seed, ood in enumerate((0.2, 0.3, 0.4)):
        write_job(tmp_path / "sweep", f"e{seed}", "erm", seed, ood=ood, id_acc=0.5, lcs=None, step_time=2.0)
    write_job(tmp_path / "sweep", "v0", "iga_v2", 0, ood=0.5, id_acc=0.5, lcs=None, step_time=3.0)
    out = collect(tmp_path / "sweep", out_dir=tmp_path / "out")
    assert sorted(p.name for p in out.written) == [
        "cost.json",
        "results.csv",
        "results.md",
        "results.tex",
        "summary.json",
    ]
    assert all(p.parent == tmp_path / "out" for p in out.written)

    md = (tmp_path / "out" / "results.md").read_text()
    assert md == out.markdown
    assert md.startswith("# Results: sweep\n\nmodel selection: in-domain validation accuracy")
    assert "| erm | 3 | – | 50.0 ± 0.0 | 30.0 ± 24.8 | 20.0 ± 24.8 | – | – | 1.00× |" in md
    assert "| iga_v2 | 1 | – | 50.0 (n=1)† | 50.0 (n=1)† | 0.0 (n=1)† | – | – | 1.50× |" in md
    assert "|:---|---:|---:|---:|---:|---:|---:|---:|---:|" in md

    tex = (tmp_path / "out" / "results.tex").read_text()
    assert r"\begin{tabular}{lrrrrrrrr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert (
        r"erm & 3 & -- & 50.0 $\pm$ 0.0 & 30.0 $\pm$ 24.8 & 20.0 $\pm$ 24.8 & -- & -- & 1.00$\times$ \\"
        in tex
    )
    assert r"iga\_v2 & 1 & -- & 50.0 (n=1)$^\dagger$" in tex
    assert r"ID acc \%" in tex and "±" not in tex and "_v2" not in tex.replace(r"\_v2", "")

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "results.csv").read_text())))
    assert list(rows[0]) == ["group", "family", "metric", "mean", "ci95", "n"]
    by_key = {(r["group"], r["family"], r["metric"]): r for r in rows}
    ood = by_key[("erm", "overall", "ood_accuracy")]
    assert float(ood["mean"]) == pytest.approx(0.3) and ood["n"] == "3"
    assert float(ood["ci95"]) == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert by_key[("erm", "overall", "lcs")] == {
        "group": "erm",
        "family": "overall",
        "metric": "lcs",
        "mean": "",
        "ci95": "",
        "n": "0",
    }
    assert float(by_key[("iga_v2", "overall", "step_time_rel_erm")]["mean"]) == pytest.approx(1.5)

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(out.summary))
    assert list(summary) == ["erm", "iga_v2"]


def test_latex_escape():
    assert latex_escape("a_b 10% ± 1†") == r"a\_b 10\% $\pm$ 1$^\dagger$"
    assert latex_escape("ERM→oracle – x") == r"ERM$\to$oracle -- x"


def test_unknown_format_is_an_error(tmp_path):
    write_job(tmp_path, "e0", "erm", 0)
    with pytest.raises(ValueError, match="format: unknown 'pdf'"):
        collect(tmp_path, formats=("md", "pdf"))


# ---- bad input (the reader's own messages are tested in test_sweep_results.py) -----------------------------


def test_a_metric_that_is_not_a_number_names_the_file_and_field(tmp_path):
    job = write_job(tmp_path, "e0", "erm", 0)
    result = json.loads((job / "result.json").read_text())
    result["eval"]["summary"]["ood_accuracy"] = "high"
    (job / "result.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"e0/result\.json: eval\.summary\.ood_accuracy: expected a number"):
        collect(tmp_path, formats=())


# ---- the demo's run folders --------------------------------------------------------------------------------


def demo_like_result(algorithm: str, ood: float, step_time: float) -> dict[str, Any]:
    """The parts of a `iga demo` run's result.json that collect reads (used where runs/demo was never made)."""
    return {
        "config": {"algorithm": algorithm, "seed": 0, "algorithm_options": {}},
        "train": {"step_time_s": step_time, "steps": 300},
        "eval": {
            "summary": {"id_accuracy": 0.2, "ood_accuracy": ood, "gap": 0.2 - ood, "by_family": {}},
            "lcs": {"canonical": 0.3},
        },
    }


@pytest.fixture
def demo_runs(tmp_path) -> Path:
    """A copy of the real ``runs/demo/{erm,iga}/result.json`` when `iga demo` ran here, else look-alikes."""
    for method, ood, step in (("erm", 0.225, 0.55), ("iga", 0.1875, 0.77)):
        (tmp_path / "demo" / method).mkdir(parents=True)
        source = DEMO_RUNS / method / "result.json"
        target = tmp_path / "demo" / method / "result.json"
        if source.is_file():
            shutil.copy(source, target)
        else:
            target.write_text(json.dumps(demo_like_result(method, ood, step)))
    (tmp_path / "demo" / "summary.json").write_text('{"methods": "the demo\'s own"}')
    return tmp_path / "demo"


def test_demo_run_folders_are_accepted_without_a_jobs_folder(demo_runs):
    originals = {m: json.loads((demo_runs / m / "result.json").read_text()) for m in ("erm", "iga")}
    records = load_sweep(demo_runs)
    assert [(r.group, r.seed, r.hparams_seed, r.finished) for r in records] == [
        ("erm", originals["erm"]["config"]["seed"], 0, True),
        ("iga", originals["iga"]["config"]["seed"], 0, True),
    ]
    out = collect(demo_runs)
    for method, original in originals.items():
        assert out.summary[method]["ood_accuracy"]["mean"] == original["eval"]["summary"]["ood_accuracy"]
        assert out.summary[method]["lcs"]["mean"] == original["eval"]["lcs"]["canonical"]
    erm_step = originals["erm"]["train"]["step_time_s"]
    assert out.summary["iga"]["step_time_rel_erm"] == pytest.approx(
        originals["iga"]["train"]["step_time_s"] / erm_step
    )
    # Written beside, not over, the demo's own summary.json.
    assert out.out_dir == demo_runs / "collect"
    assert json.loads((demo_runs / "summary.json").read_text()) == {"methods": "the demo's own"}


# ---- CLI ---------------------------------------------------------------------------------------------------


def test_cli_prints_tables_counts_and_warnings_and_writes_files(tmp_path):
    for seed, ood in enumerate((0.2, 0.3, 0.4)):
        write_job(tmp_path / "sweep", f"e{seed}", "erm", seed, ood=ood)
    write_job(tmp_path / "sweep", "i0", "iga", 0, ood=0.5)
    write_job(tmp_path / "sweep", "i1", "iga", 1, done=False)
    args = [str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), "--format", "md"]
    # A wide terminal, so that rich keeps each cell on one line.
    result = CliRunner().invoke(collect_command.app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "jobs: 4 finished (4 kept after model selection), 1 unfinished (not used)" in result.stdout
    assert "30.0 ± 24.8" in result.stdout
    assert "warning: Overall: † fewer than 3 seeds: iga" in " ".join(result.stderr.split())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cost.json", "results.md", "summary.json"]


def test_cli_error_for_a_folder_without_jobs(tmp_path):
    result = CliRunner().invoke(collect_command.app, [str(tmp_path)])
    assert result.exit_code == 2
    assert "no jobs" in result.output


def test_doctests():
    outcome = doctest.testmod(collect_module)
    assert outcome.attempted >= 5 and outcome.failed == 0
    outcome = doctest.testmod(collect_render_module)
    assert outcome.attempted >= 4 and outcome.failed == 0


def test_selection_on_the_cue_free_validation_split(tmp_path):
    # Draw 0 wins on val (cue reading), draw 1 on val_nocue: --select val_nocue keeps draw 1.
    for job_id, hs, val, nocue, ood in [("a", 0, 0.9, 0.2, 0.1), ("b", 1, 0.5, 0.4, 0.3)]:
        job = write_job(tmp_path, job_id, "iga", 0, hparams_seed=hs, val=val, ood=ood)
        result = json.loads((job / "result.json").read_text())
        result["eval"]["summary"]["val_nocue_accuracy"] = nocue
        (job / "result.json").write_text(json.dumps(result))
    assert [r.job_id for r in collect(tmp_path, formats=()).selected] == ["a"]
    out = collect(tmp_path, formats=(), select="val_nocue")
    assert [r.job_id for r in out.selected] == ["b"]
    assert "val split without shortcut cues" in out.markdown
    assert row_of(out.markdown, "iga")[1].startswith("40.0")
    assert out.summary["iga"]["val_nocue_accuracy"]["mean"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="select: unknown 'ood'; allowed: val, val_nocue, test"):
        collect(tmp_path, formats=(), select="ood")


def test_test_domain_selection_is_the_oracle_rule_and_says_so(tmp_path):
    # Draw 0 wins on val, draw 1 on the held-out accuracy: --select test keeps draw 1 and labels the table oracle.
    write_job(tmp_path, "a", "iga", 0, hparams_seed=0, val=0.9, ood=0.1)
    write_job(tmp_path, "b", "iga", 0, hparams_seed=1, val=0.5, ood=0.3)
    out = collect(tmp_path, formats=(), select="test")
    assert [r.job_id for r in out.selected] == ["b"]
    assert (
        "test-domain validation (ORACLE" in out.markdown and "Selected on: OOD acc % (oracle)" in out.markdown
    )
    assert row_of(out.markdown, "iga")[1].startswith("30.0")


def test_shortcut_reliance_table_is_paired_per_run_and_absent_without_val_nocue(tmp_path):
    assert "Shortcut reliance" not in collect(_three_erm(tmp_path / "plain"), formats=()).markdown
    runs = [
        ("e0", "erm", 0, 0.5, 0.2, 0.8, 0.3),
        ("e1", "erm", 1, 0.7, 0.2, 0.6, 0.3),
        ("i0", "iga", 0, 0.3, 0.3, 0.3, 0.3),
    ]
    for job_id, group, seed, val, nocue, follow, follow_hidden in runs:
        job = write_job(tmp_path / "cues", job_id, group, seed, val=val)
        result = json.loads((job / "result.json").read_text())
        result["eval"]["summary"].update(
            val_nocue_accuracy=nocue, cue_follow=follow, cue_follow_nocue=follow_hidden
        )
        if group == "erm":  # only ERM evaluated val_wrongcue: IGA's cell is "–"
            result["eval"]["summary"]["wrongcue_follow"] = follow / 2
        (job / "result.json").write_text(json.dumps(result))
    out = collect(tmp_path / "cues", formats=())
    erm, iga = (
        row_of(out.markdown, "erm", "Shortcut reliance"),
        row_of(out.markdown, "iga", "Shortcut reliance"),
    )
    # ERM: gains 30 and 50 points → mean 40 (two seeds: t(0.975, 1)·sd/√2 = 12.706·14.142/1.414 = 127.1)
    assert erm[:4] == ["2", "60.0 ± 127.1†", "20.0 ± 0.0†", "40.0 ± 127.1†"]
    assert erm[4].startswith("70.0") and erm[5].startswith("30.0") and erm[6].startswith("35.0")
    assert iga[6] == "–" and out.summary["erm"]["wrongcue_follow"]["mean"] == pytest.approx(0.35)
    assert iga[3].startswith("0.0") and out.summary["iga"]["cue_gain"]["mean"] == pytest.approx(0.0)
    assert out.summary["erm"]["cue_follow"]["mean"] == pytest.approx(0.7)


def _three_erm(root):
    for seed in range(3):
        write_job(root, f"p{seed}", "erm", seed, val=0.5)
    return root


def _lodo_jobs(root, draw_scores, domains=("math", "law")):
    """Main jobs of one (group, seed) per draw plus their leave-one-out jobs with the given left-out val scores."""
    for hs, (val, ood, held) in enumerate(draw_scores):
        job = write_job(root, f"m{hs}", "iga", 0, hparams_seed=hs, val=val, ood=ood)
        result = json.loads((job / "result.json").read_text())
        result["config"]["train_domains"] = list(domains)
        (job / "result.json").write_text(json.dumps(result))
        for d, score in zip(domains, held, strict=True):
            if score is None:
                continue  # that leave-one-out job never ran
            lodo = write_job(root, f"l{hs}{d}", "iga", 0, hparams_seed=hs, val=0.99, ood=0.99)
            entry = json.loads((lodo / "job.json").read_text())
            (lodo / "job.json").write_text(json.dumps({**entry, "left_out": d}))
            result = json.loads((lodo / "result.json").read_text())
            result["eval"]["summary"]["by_domain"] = {d: {"val": score}}
            (lodo / "result.json").write_text(json.dumps(result))


def test_leave_one_domain_out_selection_averages_the_left_out_domains_and_never_reports_those_jobs(tmp_path):
    # Draw 0 wins on val; draw 1 on the left-out domains (mean 0.6 vs 0.35); draw 2 would win but misses one.
    _lodo_jobs(tmp_path, [(0.9, 0.1, (0.3, 0.4)), (0.5, 0.3, (0.5, 0.7)), (0.4, 0.2, (0.9, None))])
    assert [r.job_id for r in collect(tmp_path, formats=()).selected] == [
        "m0"
    ]  # the leave-one-out jobs: never
    out = collect(tmp_path, formats=(), select="lodo")
    assert [r.job_id for r in out.selected] == ["m1"]
    assert "leave-one-training-domain-out" in out.markdown and row_of(out.markdown, "iga")[1].startswith(
        "50.0"
    )
    assert out.summary["iga"]["n_seeds"] == 1


def test_leave_one_domain_out_without_its_jobs_keeps_the_defaults_and_says_so(tmp_path):
    _lodo_jobs(tmp_path, [(0.9, 0.1, (None, None)), (0.5, 0.3, (None, None))])
    out = collect(tmp_path, formats=(), select="lodo")
    assert [r.job_id for r in out.selected] == ["m0"]
    assert "no lodo_val_accuracy in any of its 2 hparams draws" in out.markdown
