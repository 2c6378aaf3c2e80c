"""studies/micro_regime.py: intervals and the tables it prints (the runs themselves are measured, not tested)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "studies" / "micro_regime.py"
_spec = importlib.util.spec_from_file_location("micro_regime", _PATH)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


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
                "steps": 10, "lr": 0.003, "rank": 16, "train_seconds": 12.0, "step_time_s": 0.2,
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
