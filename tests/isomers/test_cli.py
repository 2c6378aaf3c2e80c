"""``iga data build|show|domains|check`` through typer's CliRunner on the tiny preset."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iga.cli import app

runner = CliRunner()


def invoke(*args: str):
    """Run ``iga ARGS`` with a wide terminal, so rich tables are not truncated."""
    return runner.invoke(app, list(args), env={"COLUMNS": "300"})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    result = invoke(
        "data", "build", "--preset", "tiny", "--out", str(out), "--seed", "1", "--skeletons", "S01,S09,S10"
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_build_writes_the_suite_and_prints_a_summary(built):
    out, output = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["skeletons"] == [
        "S01_arith_chain",
        "S09_transitive_order",
        "S10_relation_compose",
    ]
    assert manifest["seed"] == 1
    for text in (
        "IsoArith",
        "IsoRelate",
        "S09_transitive_order",
        "ood_surface",
        manifest["content_hash"],
        "heldout: finance, sports, cooking, fictional",
        "built in",
    ):
        assert text in output
    assert "IsoDeduce" not in output


def test_build_flags_override_the_preset(tmp_path):
    result = invoke(
        "data",
        "build",
        "--preset",
        "tiny",
        "--out",
        str(tmp_path),
        "--skeletons",
        "S04",
        "--no-shortcuts",
        "--train-per-skeleton",
        "5",
        "--eval-per-skeleton",
        "1",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 4 and all(r["shortcut"] is None for r in rows)
    assert len((tmp_path / "id_test.jsonl").read_text().splitlines()) == 8


def test_build_reads_a_config_file(tmp_path):
    (tmp_path / "cfg.yaml").write_text("preset: small\nskeletons: [S07]\nshortcut: {eval: wrong}\n")
    result = invoke(
        "data",
        "build",
        "--config",
        str(tmp_path / "cfg.yaml"),
        "--out",
        str(tmp_path / "o"),
        "--preset",
        "tiny",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["config"]["preset"] == "tiny"
    rows = [json.loads(line) for line in (tmp_path / "o" / "stress.jsonl").read_text().splitlines()]
    assert {r["skeleton"] for r in rows} == {"S07_prop_pattern"}
    assert all(r["shortcut"]["correct"] is False for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skeletons", "S01,S77"], "unknown skeleton 'S77'"),
        (["--preset", "huge"], "config.preset: 'huge' is not one of tiny, small, default"),
        (["--shortcut-eval", "maybe"], "shortcut.eval: 'maybe' is not one of none, wrong"),
    ],
)
def test_build_errors_are_one_line_and_exit_2(tmp_path, args, message):
    result = invoke("data", "build", "--out", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.output.strip().startswith("error:")


def test_a_bad_domain_file_exits_2_with_its_location(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: bad\nrole: sometimes\ndescription: x\n")
    for command in (["data", "domains"], ["data", "build", "--preset", "tiny", "--out", str(tmp_path / "o")]):
        result = invoke(*command, "--domains-dir", str(tmp_path))
        assert result.exit_code == 2
        assert "bad.yaml: role: 'sometimes' is not one of train, heldout, stress" in result.output


def test_show_prints_one_isomer_set_side_by_side(built):
    out, _ = built
    result = invoke("data", "show", str(out), "--split", "ood_surface", "--index", "2")
    assert result.exit_code == 0, result.output
    assert "S09-ood_surface-00000" in result.output
    for domain in ("math", "medicine", "law", "science", "finance", "sports", "cooking", "fictional"):
        assert domain in result.output
    assert result.output.count("The answer is") == 8
    by_id = invoke("data", "show", str(out), "--split", "train", "--instance", "S10-train-00001")
    assert by_id.exit_code == 0 and "S10_relation_compose" in by_id.output and "fictional" not in by_id.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "99"], "--index: 99 is out of range (id_test.jsonl has 6 isomer sets)"),
        (["--instance", "S01-train-00000"], "--instance: 'S01-train-00000' is not in id_test.jsonl"),
        (["--split", "dev"], "--split: 'dev' is not one of train, val"),
    ],
)
def test_show_errors(built, args, message):
    out, _ = built
    result = invoke("data", "show", str(out), *args)
    assert result.exit_code == 2 and message in result.output


def test_domains_lists_roles_and_coverage(tmp_path):
    (tmp_path / "astronomy.yaml").write_text((Path(__file__).parent / "data" / "astronomy.yaml").read_text())
    result = invoke("data", "domains", "--domains-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "counterfactual" in result.output and "stress" in result.output
    assert "11/11" in result.output and "1/11 (missing S02, S03" in result.output


def _fake_check_module(problems):
    module = types.ModuleType("iga.isomers.check")
    module.check_file = lambda path: problems
    return module


def test_check_prints_every_problem_and_exits_2(monkeypatch, tmp_path):
    lines = ["f.jsonl:3: answer: '12x' is not an int", "f.jsonl:9: domain: missing"]
    monkeypatch.setitem(sys.modules, "iga.isomers.check", _fake_check_module(lines))
    result = invoke("data", "check", str(tmp_path / "f.jsonl"))
    assert result.exit_code == 2
    assert all(line in result.output for line in lines) and "2 problem(s)" in result.output


def test_check_ok_prints_a_one_line_summary(monkeypatch, built):
    out, _ = built
    monkeypatch.setitem(sys.modules, "iga.isomers.check", _fake_check_module([]))
    result = invoke("data", "check", str(out / "train.jsonl"))
    assert result.exit_code == 0
    assert result.output.strip().splitlines() == [f"OK: {out / 'train.jsonl'}: 36 records, no problems"]


def test_check_accepts_generated_files_with_the_real_checker(built):
    pytest.importorskip("iga.isomers.check")
    out, _ = built
    for split in ("train", "ood_surface", "stress"):
        result = invoke("data", "check", str(out / f"{split}.jsonl"))
        assert result.exit_code == 0, result.output
