"""``iga eval-external`` and ``iga data import`` through typer, on a tiny saved student and a tiny run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from iga.commands import external

os.environ.setdefault("HF_HUB_OFFLINE", "1")
needs_rg = pytest.mark.skipif(
    __import__("importlib").util.find_spec("reasoning_gym") is None, reason="reasoning-gym is not installed"
)


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """The two apps wired the way iga.cli wires them."""
    root = typer.Typer()
    root.registered_commands += external.app.registered_commands
    root.add_typer(external.data_app, name="data")
    return root


def invoke(cli, *args: str):
    """The result, with its output's whitespace collapsed; a wide terminal so rich never breaks a path."""
    res = CliRunner().invoke(cli, list(args), env={"COLUMNS": "1000"})
    res.text = " ".join(res.output.split())
    return res


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    path = tmp_path_factory.mktemp("student")
    tok = train_bpe_tokenizer(
        ["Consider these statements. Does it follow? The answer is Yes."] * 30, vocab_size=300
    )
    build_student("micro", tok, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@needs_rg
def test_eval_external_on_a_student_writes_every_item(cli, student_dir, tmp_path):
    out = tmp_path / "rg.json"
    res = invoke(
        cli,
        "eval-external",
        "--student",
        str(student_dir),
        "--task",
        "reasoning_gym:syllogism",
        "--task",
        "reasoning_gym:gsm_symbolic",
        "--n",
        "2",
        "--max-new-tokens",
        "3",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert "syllogism" in res.text and "gsm_symbolic" in res.text
    data = json.loads(out.read_text())
    assert data["prompt_format"] == "PromptFormat"  # auto: no chat template -> plain
    assert [r["task"] for r in data["results"]] == ["reasoning_gym:syllogism", "reasoning_gym:gsm_symbolic"]
    assert all(r["n"] == 2 and len(r["items"]) == 2 for r in data["results"])


@needs_rg
def test_eval_external_on_a_run_merges_into_result_json(cli, student_dir, tmp_path):
    from iga.models.lora import attach_lora
    from iga.models.pretrain import load_base

    run = tmp_path / "run"
    model, _ = load_base(student_dir)
    attach_lora(model, r=2).save_pretrained(run / "adapter")
    (run / "config.json").write_text(
        json.dumps({"data_dir": str(tmp_path), "out_dir": str(run), "base_dir": str(student_dir)})
    )
    (run / "result.json").write_text(json.dumps({"eval": {"kept": True}}))
    res = invoke(
        cli,
        "eval-external",
        "--run",
        str(run),
        "--task",
        "reasoning_gym:family_relationships",
        "--n",
        "2",
        "--max-new-tokens",
        "3",
        "--seed",
        "4",
    )
    assert res.exit_code == 0, res.output
    result = json.loads((run / "result.json").read_text())
    assert result["eval"] == {"kept": True}  # IsoBench results stay beside the external ones
    summary = result["external"]["reasoning_gym:family_relationships"]
    assert summary["n"] == 2 and summary["seed"] == 4 and "items" not in summary
    assert summary["prompt_format"] == "PromptFormat"
    assert len((run / "external-family_relationships.jsonl").read_text().splitlines()) == 2


def test_eval_external_scores_an_imported_file_with_our_extraction(cli, student_dir, tmp_path):
    src = tmp_path / "gsm.jsonl"
    src.write_text(
        "".join(json.dumps({"question": f"{i} + 1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(3))
    )
    imported = tmp_path / "gsm8k.jsonl"
    assert invoke(cli, "data", "import", "--format", "gsm8k", str(src), "--out", str(imported)).exit_code == 0
    out = tmp_path / "res.json"
    res = invoke(
        cli,
        "eval-external",
        "--student",
        str(student_dir),
        "--records",
        str(imported),
        "--max-new-tokens",
        "3",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    (result,) = json.loads(out.read_text())["results"]
    assert result["task"] == "file:gsm8k.jsonl" and result["n"] == 3
    assert [item["id"] for item in result["items"]] == ["gsm8k-00000", "gsm8k-00001", "gsm8k-00002"]
    for mode in ("strict", "flexible"):
        s = result[mode]
        assert s["accuracy"] == s["mean_score"] and s["extraction_failures"] == sum(
            item[mode]["failed_extraction"] for item in result["items"]
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "q"}) + "\n")
    res = invoke(cli, "eval-external", "--student", str(student_dir), "--records", str(bad))
    assert res.exit_code == 2 and "bad.jsonl:1: answer: missing field 'answer'" in res.text


def test_eval_external_refuses_bad_arguments_in_one_line(cli, student_dir, tmp_path):
    res = invoke(cli, "eval-external", "--task", "reasoning_gym:syllogism")
    assert res.exit_code == 2 and "give exactly one of --run DIR" in res.text
    res = invoke(cli, "eval-external", "--student", str(student_dir))
    assert res.exit_code == 2 and "give at least one --task" in res.text
    res = invoke(
        cli, "eval-external", "--student", str(student_dir), "--records", str(tmp_path / "none.jsonl")
    )
    assert res.exit_code == 2 and "--records: no such file" in res.text
    res = invoke(cli, "eval-external", "--task", "reasoning_gym:chess", "--student", str(student_dir))
    assert res.exit_code == 2 and "unknown external task 'reasoning_gym:chess'" in res.text
    res = invoke(cli, "eval-external", "--task", "reasoning_gym:syllogism", "--student", "no-such-model")
    assert res.exit_code == 2 and "not an existing folder and not a preset; presets: smollm2-135m" in res.text
    if __import__("importlib").util.find_spec("reasoning_gym") is not None:
        res = invoke(
            cli,
            "eval-external",
            "--task",
            "reasoning_gym:syllogism",
            "--student",
            str(student_dir),
            "--format",
            "chat",
        )
        assert res.exit_code == 2 and "no chat_template" in res.text


def test_data_import_reads_a_public_file(cli, tmp_path):
    src = tmp_path / "gsm.jsonl"
    src.write_text(json.dumps({"question": "2 + 2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}) + "\n")
    out = tmp_path / "out" / "gsm.jsonl"
    res = invoke(cli, "data", "import", "--format", "gsm8k", str(src), "--out", str(out), "--split", "stress")
    assert res.exit_code == 0, res.output
    assert "wrote 1 records (single-domain evaluation records)" in res.text
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["answer"] == "4" and rec["split"] == "stress" and rec["gold_cot"].endswith("The answer is 4.")
    res = invoke(cli, "data", "import", "--format", "gsm8k", "--out", str(out))
    assert res.exit_code == 2 and "reads a file: give its path" in res.text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    res = invoke(cli, "data", "import", "--format", "gsm8k", str(bad), "--out", str(out))
    assert res.exit_code == 2 and ":1: answer: must be a non-empty string" in res.text


@needs_rg
def test_data_import_builds_isomer_sets_from_reasoning_gym(cli, tmp_path):
    out = tmp_path / "rg.jsonl"
    res = invoke(
        cli,
        "data",
        "import",
        "--format",
        "reasoning_gym:basic_arithmetic",
        "--n",
        "3",
        "--domains",
        "math,law,sports",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert "wrote 9 records (3 isomer sets)" in res.text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["domain"] for r in rows} == {"math", "law", "sports"} and {r["split"] for r in rows} == {
        "id_test"
    }
    res = invoke(
        cli, "data", "import", "--format", "reasoning_gym:basic_arithmetic", str(out), "--out", str(out)
    )
    assert res.exit_code == 2 and "takes no FILE" in res.text
