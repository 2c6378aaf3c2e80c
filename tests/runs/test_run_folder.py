"""iga.runs.folder: the run folder names every file once; an attempt's leftovers; result.json merges sections."""

from __future__ import annotations

import ast
import doctest
import json
from pathlib import Path

import iga.runs.folder as folder_module
from iga.runs.folder import RunFolder
from iga.training.outputs import CHECKPOINT_NAME, LOG_NAME

SRC = Path(__file__).resolve().parents[2] / "src" / "iga"
#: The only modules that spell a run folder's file names: training writes its own, RunFolder names them all.
OWNERS = {"runs/folder.py", "training/outputs.py"}


def test_doctests():
    assert doctest.testmod(folder_module).failed == 0


def test_every_file_has_one_name(tmp_path):
    run = RunFolder(tmp_path)
    paths = [run.config, run.log, run.tensorboard, run.checkpoint, run.adapter, run.train_summary, run.result,
             run.completions, run.external_items("x")]  # fmt: skip
    assert len({p.name for p in paths}) == len(paths)
    assert all(p.parent == tmp_path for p in paths)
    assert (run.checkpoint.name, run.log.name) == (CHECKPOINT_NAME, LOG_NAME)


def test_no_other_module_spells_a_run_file_name():
    names = {"result.json", "checkpoint.pt", "log.jsonl", "completions.jsonl", "train_summary.json"}
    spelled = set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                spelled.add(rel)
    assert spelled == OWNERS


def test_started_and_clear_attempt(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.started()
    run.config.write_text("{}")
    assert run.started()
    run.tensorboard.mkdir()
    (run.tensorboard / "events").write_text("")
    run.log.write_text("")
    run.result.write_text("{}")
    run.clear_attempt()
    assert not run.started() and not run.result.exists() and not run.tensorboard.exists()


def test_update_result_merges_sections_and_refreshes_provenance(tmp_path):
    run = RunFolder(tmp_path)
    run.update_result(train={"steps": 3})
    result = run.update_result(eval={"n_records": 2})
    assert result["train"] == {"steps": 3} and result["eval"] == {"n_records": 2} and "provenance" in result
    assert json.loads(run.result.read_text()) == result == run.read_result()
