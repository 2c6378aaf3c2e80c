"""Claims check: paired differences over seeds, verdicts, and the rendered table on a hand-made sweep."""

from __future__ import annotations

import doctest
import json

import pytest

import claims as claims_module
from claims import (
    check_claims,
    main,
    paired_difference,
    per_seed,
    render_claims,
    render_settings,
    same_setting_comparison,
)


def _job(root, name, group, seed, ood, idacc, lcs, ablation=None):
    job = root / "jobs" / name
    job.mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"group": group, "seed": seed, "ablation": ablation}))
    ev = {
        "summary": {"ood_accuracy": ood, "id_accuracy": idacc, "val_accuracy": 0.5},
        "lcs": {"canonical": lcs},
    }
    (job / "result.json").write_text(json.dumps({"eval": ev}))
    (job / "done").write_text("")


@pytest.fixture()
def sweep(tmp_path):
    for s, (e, i, v) in enumerate([(0.20, 0.30, 0.25), (0.22, 0.33, 0.20), (0.18, 0.30, 0.21)]):
        _job(tmp_path, f"erm{s}", "erm", s, e, 0.5, 0.30)
        _job(tmp_path, f"iga{s}", "iga", s, i, 0.5, 0.10 + 0.01 * s)
        _job(tmp_path, f"vrex{s}", "vrex", s, v, 0.5, 0.20)
    _job(tmp_path, "abl", "iga:tau=1", 0, 0.9, 0.9, 0.0, {"name": "tau", "value": 1})
    return tmp_path


def test_paired_difference_uses_common_seeds_and_the_t_interval():
    d = paired_difference({0: 0.3, 1: 0.33, 2: 0.30}, {0: 0.2, 1: 0.22, 2: 0.18, 3: 0.0})
    diffs = [0.1, 0.11, 0.12]
    assert d.n == 3 and d.mean == pytest.approx(0.11)
    assert d.ci95 == pytest.approx(4.302652729749462 * 0.01 / 3**0.5)
    assert sum(diffs) / 3 == pytest.approx(d.mean)


def test_claims_verdicts_on_a_hand_made_sweep(sweep):
    data = per_seed(sweep)
    assert set(data) == {"erm", "iga", "vrex"}  # ablation rows are not part of the comparison
    claims = check_claims(data)
    gain = claims["ood_gain_over_erm"]
    assert gain["points"] == pytest.approx(11.0) and gain["verdict"] == "better"
    assert claims["lcs"]["ratio_erm_over_method"] == pytest.approx(0.30 / 0.11)
    assert claims["lcs"]["verdict"] == "better"  # IGA's LCS is lower on every seed
    vs = claims["versus"]["vrex"]
    # OOD differences 0.05, 0.13, 0.09: mean 0.09, sd 0.04, half-width 4.303·0.04/√3 = 0.099 > 0.09
    assert vs["ood_accuracy"]["mean"] == pytest.approx(0.09)
    assert vs["ood_accuracy"]["verdict"] == "no significant difference"
    assert vs["id_accuracy"]["verdict"] == "no significant difference" and vs["id_accuracy"]["mean"] == 0
    text = render_claims(claims)
    assert "| OOD-surface gain over ERM-SFT (points) | up to +14.3 | +11.0 ± " in text
    assert "| vrex | +9.0 ± 9.9 (n=3) | no significant difference |" in text


def test_missing_groups_and_the_command(sweep, tmp_path):
    with pytest.raises(ValueError, match="needs finished 'fish' and 'erm'"):
        check_claims(per_seed(sweep), method="fish")
    out = tmp_path / "out" / "claims.md"
    main([str(sweep), "--out", str(out)])
    assert out.read_text().startswith("# Claims check") and json.loads(out.with_suffix(".json").read_text())


def test_shortcut_reliance_claim_is_paired_and_only_made_with_val_nocue(sweep, tmp_path):
    assert check_claims(per_seed(sweep))["shortcut"] == {}  # no job evaluated val_nocue
    root = tmp_path / "cues"
    # ERM reads the cues (gain 10/12/14 points), IGA barely (1/2/3): differences −9, −10, −11.
    for s in range(3):
        for group, gain, follow in (("erm", 0.10 + 0.02 * s, 0.30), ("iga", 0.01 * (s + 1), 0.12)):
            _job(root, f"{group}{s}", group, s, 0.2, 0.3, 0.2)
            path = root / "jobs" / f"{group}{s}" / "result.json"
            result = json.loads(path.read_text())
            result["eval"]["summary"].update(
                val_accuracy=0.4 + gain, val_nocue_accuracy=0.4, cue_follow=follow, cue_follow_nocue=0.1
            )
            path.write_text(json.dumps(result))
    shortcut = check_claims(per_seed(root))["shortcut"]
    gain = shortcut["cue_gain"]
    assert gain["difference"]["mean"] == pytest.approx(-0.10)
    assert gain["difference"]["ci95"] == pytest.approx(4.302652729749462 * 0.01 / 3**0.5)
    assert gain["verdict"] == "better"  # lower reliance is better
    follow = shortcut["cue_excess_follow"]
    assert follow["erm"]["mean"] == pytest.approx(0.2) and follow["iga"]["mean"] == pytest.approx(0.02)
    text = render_claims(check_claims(per_seed(root)))
    assert "less shortcut reliance than ERM-SFT: cue gain" in text and "| better |" in text


def test_same_setting_comparison_pairs_ablation_groups_of_both_methods(sweep, tmp_path):
    # iga:tau=1 has no erm partner; iga:cues=off / erm:cues=off share their data and are paired per seed.
    for s, (i, e) in enumerate([(0.10, 0.30), (0.14, 0.30)]):
        _job(sweep, f"igaoff{s}", "iga:cues=off", s, i, 0.5, 0.2, {"name": "cues", "value": "off"})
        _job(sweep, f"ermoff{s}", "erm:cues=off", s, e, 0.5, 0.2, {"name": "cues_erm", "value": "off"})
    _job(sweep, "ermoff9", "erm:cues=off", 9, 0.9, 0.5, 0.2, {"name": "cues_erm", "value": "off"})  # unpaired
    data = per_seed(sweep, ablations=True)
    assert {"iga:tau=1", "iga:cues=off", "erm:cues=off"} <= set(data)
    rows = same_setting_comparison(data)
    assert [r["setting"] for r in rows] == ["main", "cues=off"]
    main_row, off = rows
    assert main_row["ood_accuracy"]["difference"]["mean"] == pytest.approx(0.11)  # as the main claim
    # differences −0.20 and −0.16 (seed 9 has no iga partner): mean −0.18, sd 0.02·√2, half-width t(1)·sd/√2
    d = off["ood_accuracy"]["difference"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(-0.18)
    assert d["ci95"] == pytest.approx(12.706204736174696 * 0.02 * 2**0.5 / 2**0.5)
    assert off["ood_accuracy"]["verdict"] == "no significant difference"  # 0.254 > 0.18 at 2 seeds
    assert off["ood_accuracy"]["erm"]["n"] == 3  # the baseline's own mean uses all its seeds
    assert "cue_gain" not in off  # no job evaluated val_nocue
    text = "\n".join(render_settings(rows, method="iga"))
    assert "| cues=off | 12.0 / 50.0 | -18.0 ± " in text and "— no significant difference | – | – |" in text
    out = tmp_path / "claims.md"
    claims = main([str(sweep), "--out", str(out)])
    assert "| cues=off |" in out.read_text()
    # the cues=off setting's OOD and ID differences are tests too; the main setting's are the claims' own
    mc = claims["multiple_comparisons"]
    assert mc["tests"] == 2 * 3 + 2
    assert not any("under main" in name for name in mc["significant_one_by_one"])


def test_a_sweep_of_one_seed_makes_no_test_and_says_so(tmp_path):
    for group, ood in (("erm", 0.2), ("iga", 0.3)):
        _job(tmp_path, group, group, 0, ood, 0.5, 0.2)
    claims = main([str(tmp_path)])
    assert claims["multiple_comparisons"]["tests"] == 0
    assert "No verdict above is a test yet" in render_claims(claims)


def test_doctests():
    outcome = doctest.testmod(claims_module)
    assert outcome.attempted >= 2 and outcome.failed == 0


def test_p_value_is_scipys_paired_t_test_and_agrees_with_the_interval(sweep):
    from scipy import stats

    from claims import paired_p_value

    a, b = {0: 0.30, 1: 0.33, 2: 0.29}, {0: 0.20, 1: 0.22, 2: 0.25}
    p = paired_p_value(paired_difference(a, b))
    assert p == pytest.approx(stats.ttest_rel(list(a.values()), list(b.values())).pvalue, rel=1e-9)
    # The verdict reads the 95 % interval: it excludes 0 exactly when p < 0.05.
    for other, row in check_claims(per_seed(sweep))["versus"].items():
        for cell in row.values():
            assert (cell["p"] < 0.05) == (cell["verdict"] in ("better", "worse")), (other, cell)
    assert paired_p_value(paired_difference({0: 0.3}, {0: 0.1})) is None  # one seed: no test
    assert paired_p_value(paired_difference({0: 0.5, 1: 0.75}, {0: 0.25, 1: 0.5})) == 0.0  # no spread
    assert paired_p_value(paired_difference({0: 0.5, 1: 0.75}, {0: 0.5, 1: 0.75})) == 1.0


def test_holm_rejects_in_order_and_stops_at_the_first_failure():
    from claims import holm

    assert holm({}) == set()
    assert holm({"a": 0.01, "b": 0.02}) == {"a", "b"}  # 0.01 ≤ .05/2, then 0.02 ≤ .05/1
    assert holm({"a": 0.03, "b": 0.04}) == set()  # 0.03 > .05/2: nothing
    assert holm({"a": 0.001, "b": 0.9, "c": 0.012}) == {"a", "c"}  # .001 ≤ .05/3, .012 ≤ .05/2, .9 > .05


def test_multiple_comparisons_count_every_test_and_say_what_survives(sweep, tmp_path):
    claims = main([str(sweep), "--out", str(tmp_path / "claims.md")])
    mc = claims["multiple_comparisons"]
    # iga against erm and vrex on three metrics (the claims' iga − erm OOD and LCS tests are two of them, counted
    # once); id_accuracy differences are all 0 (no spread, mean 0: p = 1) and still count as tests.
    assert mc["tests"] == 2 * 3
    assert mc["expected_by_chance"] == pytest.approx(0.3)
    assert "iga − erm, OOD-surface" in mc["significant_one_by_one"]
    assert set(mc["significant_after_holm"]) <= set(mc["significant_one_by_one"])
    text = (tmp_path / "claims.md").read_text()
    assert "## Multiple comparisons" in text and f"are {mc['tests']} paired t-tests" in text


def test_the_lcs_row_shows_the_permutation_baseline_when_the_runs_recorded_one(sweep):
    assert "rows paired at random" not in render_claims(check_claims(per_seed(sweep)))
    for path in sweep.glob("jobs/*/result.json"):
        result = json.loads(path.read_text())
        result["eval"]["lcs"]["permutation_mean"] = 0.5 if "erm" in path.parent.name else 0.4
        path.write_text(json.dumps(result))
    claims = check_claims(per_seed(sweep))
    assert claims["lcs"]["permutation"] == pytest.approx({"erm": 0.5, "iga": 0.4})
    assert "; rows paired at random: 0.500 / 0.400)" in render_claims(claims)
