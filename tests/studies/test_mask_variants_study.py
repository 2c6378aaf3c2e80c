"""studies/mask_variants.py: paired differences, the gap closed, the table, and the selectivity arithmetic (the runs
themselves are measured, not tested)."""

from __future__ import annotations

import math

import pytest
import torch

import mask_variants as study  # studies/ is on sys.path (tests/studies/conftest.py)


def _run(variant, seed, nocue, follow, ood, step=0.2):
    stat = lambda x: {"acc": x, "n": 800, "lo": x - 0.02, "hi": x + 0.02}  # noqa: E731
    return {
        "variant": variant,
        "seed": seed,
        "step_time_s": step,
        "lcs": 0.5,
        "lcs_permutation_baseline": 0.4,
        "accuracy": {"val_nocue|all": stat(nocue), "ood_surface|all": stat(ood)},
        "wrong_cue_follow": {"all": stat(follow)},
    }


def _summary():
    runs = [
        _run("erm", 0, 0.90, 0.20, 0.30),
        _run("erm", 1, 0.80, 0.30, 0.40),
        _run("iga", 0, 0.92, 0.10, 0.50, step=0.3),
        _run("iga", 1, 0.84, 0.10, 0.60, step=0.3),
        _run("oracle", 0, 0.95, 0.05, 0.80),
        _run("oracle", 1, 0.95, 0.05, 0.90),
    ]
    return {"runs": {study.run_name(r["variant"], r["seed"]): r for r in runs}}


def test_paired_interval_is_the_t_interval_of_the_differences():
    mean, lo, hi = study.paired([0.1, 0.3])
    half = 12.7062047 * math.sqrt(0.02) / math.sqrt(2)  # t(0.975, 1) = 12.7062047
    assert mean == pytest.approx(0.2) and lo == pytest.approx(0.2 - half) and hi == pytest.approx(0.2 + half)
    assert study.paired([0.5]) == (0.5, 0.5, 0.5)


def test_aggregate_pairs_seeds_and_computes_the_gap_closed():
    agg = study.aggregate(_summary())
    iga = agg["variants"]["iga"]
    assert iga["seeds"] == [0, 1]
    assert iga["cue-free ID - ERM"][0] == pytest.approx(0.03)
    assert iga["wrong cue followed - ERM"][0] == pytest.approx(-0.15)
    # ERM 0.35, IGA 0.55, oracle 0.85: 0.20 of a 0.50 gap.
    assert agg["oracle_ood_surface"] == pytest.approx(0.85) and iga["gap_closed"] == pytest.approx(0.4)
    assert iga["step_x_erm"] == pytest.approx(1.5)
    assert "gap_closed" not in agg["variants"]["erm"] and "ood_surface - ERM" not in agg["variants"]["oracle"]


def test_table_has_one_row_per_variant_with_signed_differences():
    text = study.render_table(_summary())
    lines = text.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:5]] == ["| erm", "| iga", "| oracle"]
    iga = lines[3]
    assert (
        "| +3.0 [" in iga
        and "| +20.0 [+20.0, +20.0] |" in iga
        and "| -15.0 [" in iga
        and "+40 %" in iga
        and "| 1.50 |" in iga
    )


def test_mask_weighted_means_on_coordinates_and_on_subspace_directions():
    names = ["a", "b"]
    masks = {"a": torch.tensor([[1.0, 0.0]]), "b": (torch.eye(2), torch.tensor([0.5, 1.0]), torch.eye(2))}
    g_cue = {"a": torch.tensor([[[0.0, 2.0]]]), "b": torch.tensor([[[3.0, 0.0], [0.0, 0.0]]])}
    g_logic = {"a": torch.tensor([[[2.0, 0.0]]]), "b": torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])}
    out = study.mask_weighted_means(masks, names, g_cue, g_logic)
    # cue: layer a puts weight 2 on mask 0; layer b energy 9 on direction 0 (mask 0.5): (0 + 4.5) / (2 + 9).
    assert out["mask_on_cue"] == pytest.approx(4.5 / 11)
    # logic: weight 2 on mask 1 in a; energy 1 on direction 1 (mask 1) in b: (2 + 1) / (2 + 1).
    assert out["mask_on_logic"] == pytest.approx(1.0)
    assert out["ratio"] == pytest.approx(4.5 / 11)


def test_unknown_variant_is_refused_with_the_choices(tmp_path):
    with pytest.raises(SystemExit, match="unknown \\['iga_rows'\\]; choose from erm, iga, "):
        study.main(["run", "--out", str(tmp_path), "--variants", "iga_rows", "--base", str(tmp_path)])


def test_figure_is_written_as_png_and_svg(tmp_path):
    selectivity = {"variants": {"iga": {"ratio": 0.8}, "iga_row": {"ratio": 1.1}}}
    path = study.figure(_summary(), selectivity, tmp_path / "f.png")
    assert path.exists() and path.with_suffix(".svg").exists() and path.stat().st_size > 10_000


def test_selectivity_table_has_one_row_per_variant():
    payload = {
        "model": "runs/x",
        "sets": 16,
        "variants": {"iga": {"mask_on_cue": 0.1, "mask_on_logic": 0.08, "ratio": 1.25}},
    }
    text = study.render_selectivity(payload)
    assert "| iga | 0.1000 | 0.0800 | 1.25 |" in text and "16 noise-free" in text


def test_table_states_the_cost_from_the_recorded_wall_seconds():
    summary = _summary()
    for r in summary["runs"].values():
        r["wall_seconds"] = 180.0 if r["variant"] == "erm" else 360.0
    cost = next(line for line in study.render_table(summary).splitlines() if line.startswith("Cost:"))
    assert (
        cost == "Cost: 6 runs, 0.5 wall-hours; minutes per run with evaluation: erm 3.0, iga 6.0, oracle 6.0."
    )


def test_the_validation_pick_is_paired_against_the_variance_statistic():
    summary = _summary()
    extra = [_run("iga_sign", 0, 0.95, 0.05, 0.45), _run("iga_sign", 1, 0.90, 0.10, 0.62)]
    summary["runs"].update({study.run_name(r["variant"], r["seed"]): r for r in extra})
    pick = next(line for line in study.render_table(summary).splitlines() if "picks" in line)
    assert "picks **iga_sign**" in pick
    # cue-free: +0.03 and +0.06 → +4.5; ood: −0.05 and +0.02 → −1.5 (two seeds: t(0.975, 1) intervals)
    assert "Paired against `iga` (the variance statistic) on the same seeds: cue-free ID +4.5 [" in pick
    assert "ood_surface -1.5 [" in pick and pick.endswith("points (2 seeds).")
    assert study._paired_against(summary, "iga", "iga") == ""


def test_a_folder_holds_one_data_setting(tmp_path):
    (tmp_path / "mask_variants.json").write_text('{"runs": {}, "setting": "cues_noise"}')
    with pytest.raises(
        SystemExit, match=r"--setting cues: .* holds runs of setting 'cues_noise'; use another --out"
    ):
        study.main(
            ["run", "--out", str(tmp_path), "--setting", "cues", "--variants", "erm", "--base", str(tmp_path)]
        )
    with pytest.raises(SystemExit):  # argparse: not a setting of studies/micro_regime.py
        study.main(["run", "--out", str(tmp_path), "--setting", "hints"])


def test_recorded_runs_are_skipped_so_a_copied_summary_continues_the_study(tmp_path, monkeypatch, capsys):
    import json

    summary = {"runs": {"erm-s0": {"variant": "erm"}}, "setting": "cues"}
    (tmp_path / "mask_variants.json").write_text(json.dumps(summary))
    trained = []
    monkeypatch.setattr(
        study, "train_one", lambda out, v, seed, base, args: trained.append((v, seed)) or {"train_seconds": 1}
    )
    monkeypatch.setattr(study, "render_table", lambda summary: "")
    (tmp_path / "base.json").write_text("{}")
    study.main(["run", "--out", str(tmp_path), "--setting", "cues", "--variants", "erm", "--seeds", "0,1",
                "--base", str(tmp_path)])  # fmt: skip
    assert trained == [("erm", 1)] and "erm-s0: recorded, skipped" in capsys.readouterr().out


def test_merge_joins_folders_of_one_setting_and_refuses_a_conflict(tmp_path):
    import json

    def folder(name, runs, setting="cues"):
        path = tmp_path / name
        path.mkdir()
        summary = {"runs": runs, "setting": setting, "shortcut": {}, "base": {"dir": "b"}, "provenance": {}}
        (path / "mask_variants.json").write_text(json.dumps({**summary, "commands": [f"run {name}"]}))
        return path

    a = folder("a", {"erm-s0": {"last_log": {"loss": 1.0}}})
    b = folder("b", {"erm-s1": {"last_log": {"loss": 2.0}}, "erm-s0": {"last_log": {"loss": 1.0}}})
    merged = study.merge(tmp_path / "all", [a, b])
    assert list(merged["runs"]) == ["erm-s0", "erm-s1"] and merged["commands"] == ["run a", "run b"]
    clash = folder("c", {"erm-s1": {"last_log": {"loss": 3.0}}})
    with pytest.raises(SystemExit, match=r"run erm-s1 in .*c/mask_variants\.json differs"):
        study.merge(tmp_path / "all", [clash])
    other = folder("d", {}, setting="cues_noise")
    with pytest.raises(SystemExit, match="has another setting"):
        study.merge(tmp_path / "all", [other])
