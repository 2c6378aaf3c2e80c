"""``iga algorithms list|show`` through Typer's runner, and the module's torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from iga.algorithms import list_algorithms
from iga.commands.algorithms import app

runner = CliRunner()


def test_list_names_every_method_with_its_gradients_and_trainer_call():
    result = runner.invoke(app, ["algorithms", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows) == list_algorithms()
    assert rows["pcgrad"]["gradients"] == "factor" and rows["iga"]["gradients"] == "full"
    assert rows["irm"]["trainer_call"] == rows["fishr"]["trainer_call"] == "loss_from_logits"
    assert rows["fish"]["trainer_call"] == "meta_step" and rows["vrex"]["trainer_call"] == "loss"
    table = runner.invoke(app, ["algorithms", "list"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "iga_koyama" in table.output and "Conflict-averse" in table.output


def test_show_lists_defaults_ranges_and_deviations():
    result = runner.invoke(app, ["algorithms", "show", "sandmask", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    tau = next(h for h in info["hyper_parameters"] if h["name"] == "tau")
    assert tau == {"name": "tau", "default": 0.5, "search": "U(0, 1)", "choices": None}
    assert "τ = 1 zeroes the mask" in info["deviations"]
    assert "``" not in info["summary"]  # reST markup stripped for the terminal


def test_show_lists_the_allowed_values_of_igas_mask_variants():
    info = json.loads(runner.invoke(app, ["algorithms", "show", "iga", "--json"]).output)
    choices = {h["name"]: h["choices"] for h in info["hyper_parameters"]}
    assert choices["mask_space"] == ["coordinate", "factor", "row", "column", "layer", "subspace"]
    assert choices["mask_stat"] == ["variance", "sign"] and choices["tau"] is None
    text = runner.invoke(app, ["algorithms", "show", "iga"], env={"COLUMNS": "200"})
    assert text.exit_code == 0 and "coordinate | factor | row | column | layer | subspace" in text.output


def test_show_draws_with_the_sweep_convention():
    args = ["algorithms", "show", "vrex", "--benchmark", "isoarith", "--json"]
    zero = json.loads(runner.invoke(app, [*args, "--hparams-seed", "0"]).output)
    assert all(h["value"] == h["default"] for h in zero["hyper_parameters"])
    one = json.loads(runner.invoke(app, [*args, "--hparams-seed", "1"]).output)
    assert any(h["value"] != h["default"] for h in one["hyper_parameters"])
    text = runner.invoke(
        app, ["algorithms", "show", "vrex", "--benchmark", "isoarith", "--hparams-seed", "1"]
    )
    assert text.exit_code == 0 and "10^U(-1, 5)" in text.output


def test_user_errors_exit_2_with_one_line():
    missing = runner.invoke(app, ["algorithms", "show", "vrex", "--hparams-seed", "1"])
    assert missing.exit_code == 2 and "needs --benchmark" in missing.output
    unknown = runner.invoke(app, ["algorithms", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown algorithm 'nope'" in unknown.output


def test_importing_the_command_module_does_not_import_torch():
    code = "import sys, iga.commands.algorithms; assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
