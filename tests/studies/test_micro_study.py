"""studies/micro_regime.py: intervals and the tables it prints (the runs themselves are measured, not tested)."""

from __future__ import annotations

import pytest

import micro_regime as study  # studies/ is on sys.path (tests/studies/conftest.py)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = study.wilson(180, 200)
    assert lo == pytest.approx(0.8506, abs=1e-4) and hi == pytest.approx(0.9343, abs=1e-4)
    assert study.wilson(0, 0) == (0.0, 1.0)
    lo, hi = study.wilson(0, 50)
    assert lo == 0.0 and 0.07 < hi < 0.072


def test_tables_show_every_split_and_the_following_rates():
    stat = {"acc": 0.9, "n": 200, "lo": 0.85, "hi": 0.93}
    summary = {
        "runs": {
            "erm:cues": {
                "steps": 10,
                "lr": 0.003,
                "rank": 16,
                "train_seconds": 12.0,
                "step_time_s": 0.2,
                "shortcut": {"share": 0.5},
                "accuracy": {"id_test|M01_arith_walk": stat, "val_wrongcue|all": stat},
                "wrong_cue_follow": {"math": stat, "all": stat},
            }
        }
    }
    text = study.render_tables(summary)
    assert "| id_test | 90.0 [85, 93] | – | – | – | – |" in text
    assert "| val_wrongcue | – | – | – | – | 90.0 [85, 93] |" in text
    assert "math 90.0 [85, 93]" in text and "ood_surface" not in text
    summary["runs"]["erm:cues"]["wrong_cue_follow"]["M03_order"] = stat
    assert "by skeleton: M03_order 90.0 [85, 93]" in study.render_tables(summary)


def test_train_base_probes_and_base_table_renders_its_row(tmp_path):
    import json

    study.main(
        [
            "train-base", "--out", str(tmp_path), "--name", "tiny_probe", "--probe-every", "2",
            "--probe-n", "1", "--n", "1",
            "--set", "student=micro", "--set", "steps=4", "--set", "batch_size=2", "--set", "warmup_steps=1",
            "--set", "skeleton_weights=(1, 1, 1, 1)", "--set", "polish_steps=0",
        ]
    )  # fmt: skip
    probe = json.loads((tmp_path / "base-probe" / "tiny_probe" / "probe.json").read_text())
    assert [c["step"] for c in probe["curve"]] == [2, 4] and probe["final_n"] == 1
    assert "--set 'skeleton_weights=(1, 1, 1, 1)'" in probe["command"]
    table = study.base_table(tmp_path / "base-probe")
    row = next(line for line in table.splitlines() if line.startswith("| tiny_probe"))
    assert "student micro" in row and "steps 4" in row and "skeleton_weights (1, 1, 1, 1)" in row
    assert "hold_fraction" not in row  # only the fields that differ from the default


def test_train_base_polishes_the_cached_parent_and_the_table_says_so(tmp_path, monkeypatch):
    import json

    import iga.models.micro_base as micro_base
    import iga.models.micro_base_cache as micro_base_cache

    monkeypatch.setattr(micro_base_cache, "DEFAULT_CACHE", tmp_path / "cache")
    tiny = ["student=micro", "steps=3", "batch_size=2", "warmup_steps=1"]
    study.main(
        ["train-base", "--out", str(tmp_path), "--name", "polished", "--probe-every", "2", "--probe-n", "1",
         "--n", "1", *(a for s in [*tiny, "polish_steps=2"] for a in ("--set", s))]
    )  # fmt: skip
    # the parent was built into the cache, then polished for 2 steps (the probe counts the polish's steps)
    tiny_cfg = micro_base.MicroBaseConfig(**dict(map(study._parse_override, tiny)))
    parent = micro_base_cache.micro_base_path(micro_base.parent_config(tiny_cfg))
    assert (parent / micro_base.BASE_MARKER).is_file()
    folder = tmp_path / "base-probe" / "polished"
    assert json.loads((folder / micro_base.BASE_MARKER).read_text())["parent"] == parent.name
    assert [c["step"] for c in json.loads((folder / "probe.json").read_text())["curve"]] == [2]
    row = next(
        line for line in study.base_table(tmp_path / "base-probe").splitlines() if "| polished" in line
    )
    assert "polish_steps 2" in row and " (polish) |" in row


def test_an_unknown_base_field_is_named_with_the_allowed_ones():
    with pytest.raises(SystemExit, match=r"lr_peak.*expected KEY=VALUE with KEY one of student, steps"):
        study._parse_override("lr_peak=1")


def test_hybrid_domain_keeps_one_domains_sentences_and_takes_the_others_words():
    from iga.isomers.domains import load_domains
    from iga.isomers.render import render
    from iga.isomers.rng import HashRng
    from iga.isomers.skeletons import get_skeleton

    loaded = load_domains()
    math, finance = loaded["math"], loaded["finance"]
    mixed = study.hybrid_domain(math, finance)
    assert study.hybrid_domain(math, math).sections == math.sections  # its own words: the domain itself
    for sk_id, section in mixed.sections.items():
        assert section.questions == math.sections[sk_id].questions  # the sentences stay
        assert section.words == finance.sections[sk_id].words  # the words move
    sk = get_skeleton("M03_order")
    params, difficulty = sk.sample(HashRng(1, "t"), sk.regimes["train"])
    inst = sk.instance_from(params, {"regime": "train", **difficulty})
    text = render(inst, mixed, HashRng(2, "r")).question
    finance_things = set(finance.sections["M03_order"].words["things"])
    math_things = set(math.sections["M03_order"].words["things"])
    used = set(text.replace(".", " ").replace(",", " ").replace("?", " ").split())
    assert used & finance_things and not (used & (math_things - finance_things))


def test_arith_misses_are_told_apart_by_the_first_false_step():
    trace = [{"op": "add", "args": [17, 9], "out": 26}, {"op": "add", "args": [26, 8], "out": 34}]
    assert study.arith_miss_kind("step 1 : 17 + 9 = 26. step 2 : 26 + 8 = 35.", trace) == (
        "wrong sum",
        "26 + 8 = 35",
    )
    assert study.arith_miss_kind("step 1 : 17 - 9 = 9. step 2 : 9 + 8 = 16.", trace) == (
        "wrong sum",
        "17 - 9 = 9",
    )
    # every sum right, one step missing: the chain stopped early
    assert study.arith_miss_kind("step 1 : 17 + 9 = 26. the answer is 26.", trace) == ("chain length", None)
    # every sum right and as many steps: an operand was copied wrong
    assert study.arith_miss_kind("step 1 : 17 + 8 = 25. step 2 : 25 + 8 = 33.", trace) == ("copy", None)
