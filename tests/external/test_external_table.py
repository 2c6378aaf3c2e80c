"""The side-by-side table of eval-external files: Wilson intervals, column order, clear errors."""

from __future__ import annotations

import json
import math

import pytest

from iga.external.table import load_results, main, render_table, wilson


def _file(tmp_path, name, accs):
    items = [{"gold": "Yes"}] * 36 + [{"gold": "No"}] * 14  # 72 % majority
    results = [
        {
            "task": f"reasoning_gym:{t}",
            "n": 50,
            "strict": {"accuracy": a, "mean_score": a},
            "flexible": {},
            "items": items if t == "syllogism" else [{"gold": None}] * 50,
        }
        for t, a in accs.items()
    ]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"prompt_format": "ChatPromptFormat", "results": results}))
    return path


def test_wilson_matches_its_closed_form_and_stays_in_bounds():
    # k = 0: upper bound z²/(n + z²)
    assert wilson(0, 50)[1] == pytest.approx(1.96**2 / (50 + 1.96**2))
    lo, hi = wilson(30, 50)
    p, z, n = 0.6, 1.96, 50
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    assert (lo + hi) / 2 == pytest.approx(centre)
    assert hi - lo == pytest.approx(
        2 * z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    )
    assert wilson(50, 50)[1] == 1.0
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_table_has_one_column_per_file_and_a_dash_for_a_missing_task(tmp_path, capsys):
    a = _file(tmp_path, "a", {"syllogism": 0.6, "gsm_symbolic": 0.02})
    b = _file(tmp_path, "b", {"syllogism": 0.66})
    main([f"base={a}", f"erm={b}"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| task | n | majority answer % | base: acc % [95% CI]") and "erm: acc" in out[0]
    assert out[2] == "| syllogism | 50 | 72 | 60 [46, 72] (0.600) | 66 [52, 78] (0.660) |"
    assert out[3] == "| gsm_symbolic | 50 | – | 2 [0, 10] (0.020) | – |"


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json: no such file"):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"n": 3}]}')
    with pytest.raises(ValueError, match=r"bad\.json: not an `iga eval-external --out` file"):
        load_results(bad)
    with pytest.raises(ValueError, match="mode: unknown 'loose'"):
        render_table({}, mode="loose")
    with pytest.raises(SystemExit):
        main(["no-equals-sign"])
