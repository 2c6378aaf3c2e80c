"""The symbolic teacher and ``iga teach`` on a generated suite: output folder, manifest, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iga.isomers import build_suite
from iga.isomers.build import content_hash
from iga.isomers.record import EVAL_SPLITS
from iga.teachers.dataset import distill
from iga.teachers.symbolic import SymbolicTeacher
from iga.utils.io import InputError, read_jsonl, sha256_file

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    build_suite("tiny", out, seed=0)
    return out


def teach(*args: str):
    from iga.commands.teach import app

    return runner.invoke(app, list(args))


def test_symbolic_teacher_proposes_the_gold_cot():
    records = [{"id": "a", "gold_cot": "Step 1: 1 + 1 = 2.\nThe answer is 2."}, {"id": "b", "gold_cot": "x"}]
    assert SymbolicTeacher().propose(records) == [[records[0]["gold_cot"]], ["x"]]
    with pytest.raises(ValueError, match="record 'c': field 'gold_cot' is missing or empty"):
        SymbolicTeacher().propose([*records, {"id": "c", "question": "?"}])


def test_cli_symbolic_writes_a_complete_training_folder(data_dir, tmp_path):
    out = tmp_path / "distilled"
    result = teach("--data", str(data_dir), "--out", str(out), "--teacher", "symbolic")
    assert result.exit_code == 0, result.output
    assert "isomer sets kept 33/33" in " ".join(result.output.split())

    source = read_jsonl(data_dir / "train.jsonl")
    rows = read_jsonl(out / "train.jsonl")
    assert rows == [{**r, "teacher_cot": r["gold_cot"], "cot_source": "symbolic"} for r in source]
    for split in EVAL_SPLITS:
        assert (out / f"{split}.jsonl").read_bytes() == (data_dir / f"{split}.jsonl").read_bytes()

    manifest = json.loads((out / "manifest.json").read_text())
    source_manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["kind"] == "distillation" and manifest["cot_field"] == "teacher_cot"
    assert manifest["teacher"] == {"kind": "symbolic", "cot_from": "gold_cot"}
    assert manifest["source"]["content_hash"] == source_manifest["content_hash"]
    assert manifest["source"]["split_sha256"] == sha256_file(data_dir / "train.jsonl")
    assert manifest["generator_version"] == source_manifest["generator_version"]
    for split, info in manifest["splits"].items():
        assert info["sha256"] == sha256_file(out / info["file"]), split
        assert info["records"] == len(read_jsonl(out / info["file"]))
    assert manifest["content_hash"] == content_hash({s: v["sha256"] for s, v in manifest["splits"].items()})
    counts = manifest["counts"]
    assert (counts["records"], counts["records_kept"], counts["sets_kept"], counts["acceptance_rate"]) == (
        132,
        132,
        33,
        1.0,
    )
    assert set(manifest["provenance"]) >= {"versions", "git", "hardware", "timestamp_utc"}

    # The trainer reads the teacher's CoT through its cot_field and groups complete isomer sets.
    from iga.training.data import group_isomer_sets

    sets = group_isomer_sets(rows, ["math", "medicine", "law", "science"])
    assert len(sets) == 33


def test_distill_is_deterministic_apart_from_provenance(data_dir, tmp_path):
    a = distill(data_dir, tmp_path / "a", SymbolicTeacher(), progress=False)
    b = distill(data_dir, tmp_path / "b", SymbolicTeacher(), progress=False)
    assert a["content_hash"] == b["content_hash"]
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "2"], "--samples: only apply to a model teacher"),
        (["--temperature", "0.5", "--batch-size", "4"], "--temperature, --batch-size: only apply to a model"),
        (["--teacher", "no/such/model"], "--teacher: 'no/such/model' is neither 'symbolic' nor an existing"),
        (["--split", "dev"], "split 'dev':"),
    ],
)
def test_cli_bad_options_fail_with_one_message(data_dir, tmp_path, args, message):
    result = teach("--data", str(data_dir), "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()


def test_cli_refuses_to_overwrite_or_to_write_into_the_source(data_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = teach("--data", str(data_dir), "--out", str(out))
    assert result.exit_code == 2 and "is not empty" in " ".join(result.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert teach("--data", str(data_dir), "--out", str(out), "--overwrite").exit_code == 0
    assert (out / "notes.txt").read_text() == "keep me" and (out / "manifest.json").exists()

    before = sha256_file(data_dir / "train.jsonl")
    result = teach("--data", str(data_dir), "--out", str(data_dir), "--overwrite")
    assert result.exit_code == 2 and "is the source data folder" in " ".join(result.output.split())
    assert sha256_file(data_dir / "train.jsonl") == before


def test_bad_source_records_name_file_line_and_field(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = {
        "id": "a",
        "instance_id": "i",
        "domain": "math",
        "question": "q",
        "answer": "1",
        "answer_type": "int",
        "gold_cot": "The answer is 1.",
    }
    bad = {k: v for k, v in good.items() if k != "answer_type"}
    (src / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError) as err:
        distill(src, tmp_path / "out", SymbolicTeacher())
    assert (
        str(err.value)
        == f"{src / 'train.jsonl'}:2: answer_type: missing (required: id, instance_id, domain, "
        "question, answer, answer_type)"
    )
    (src / "train.jsonl").write_text("\n")
    with pytest.raises(InputError, match="the split is empty"):
        distill(src, tmp_path / "out", SymbolicTeacher())
    assert not (tmp_path / "out").exists()


def test_imported_records_without_gold_cot_need_a_model_teacher(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rec = {
        "id": "a",
        "instance_id": "i",
        "domain": "math",
        "question": "q",
        "answer": "1",
        "answer_type": "int",
    }
    (src / "train.jsonl").write_text(json.dumps(rec) + "\n")
    result = teach("--data", str(src), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "use a model teacher (--teacher PATH)" in " ".join(result.output.split())


@pytest.mark.parametrize(
    "name", ["iga.teachers.dataset", "iga.teachers.symbolic", "iga.teachers.hf", "iga.teachers.kd"]
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_importing_the_teachers_package_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, iga.teachers, iga.commands.teach; assert 'torch' not in sys.modules; "
        "from iga.teachers import TeacherLogits; assert 'torch' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_a_failing_teacher_leaves_an_existing_folder_untouched(data_dir, tmp_path):
    out = tmp_path / "previous"
    distill(data_dir, out, SymbolicTeacher(), progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class Broken(SymbolicTeacher):
        def propose(self, records, *, progress=True):
            raise RuntimeError("teacher crashed")

    with pytest.raises(RuntimeError, match="teacher crashed"):
        distill(data_dir, out, Broken(), overwrite=True, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
