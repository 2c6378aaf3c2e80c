"""Validation of user-made isomer-set files (iga.isomers.check)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from iga.isomers.check import FIELD_TYPES, MAX_SHOWN, IsomerFileError, Problem, check_file, load_isomer_file
from iga.isomers.record import RECORD_FIELDS
from iga.utils.io import InputError


def _record(rid: str, instance_id: str = "s1", domain: str = "math", **extra: object) -> dict:
    rec = {
        "id": rid,
        "instance_id": instance_id,
        "domain": domain,
        "question": f"How many tablets ({domain})?",
        "answer": "42",
        "answer_type": "int",
    }
    rec.update(extra)
    return rec


def _valid_rows() -> list[dict]:
    cot = "Step 1: 6 × 7 = 42.\nThe answer is 42."
    full = {
        "skeleton": "S01_arith_chain",
        "family": "IsoArith",
        "split": "train",
        "params": {"a": 6, "b": 7},
        "difficulty": {"depth": 1},
        "gold_cot": cot,
        "canonical_answer": "42",
        "canonical_trace": [{"op": "mul", "args": [6, 7], "out": 42}],
        "anchors": [19, cot.index("The answer is")],
        "label_space": [],
        "shortcut": None,
        "seed": 0,
        "generator_version": "isobench-1",
    }
    kin = {"answer_type": "label", "canonical_answer": "up2down1"}
    return [
        _record("m-1", domain="math", **full),
        _record("m-2", domain="medicine", **full),
        _record("m-3", domain="law", **full, source="my notes"),  # unknown fields are allowed
        _record("k-1", "s2", "family", answer="uncle", label_space=["parent", "uncle", "cousin"], **kin),
        _record(
            "k-2",
            "s2",
            "org",
            answer="skip-level manager",
            label_space=["manager", "skip-level manager"],
            **kin,
        ),
        _record("f-1", "s3", "math", answer="3/6", answer_type="fraction"),
        _record("f-2", "s3", "cooking", answer="0.5", answer_type="fraction", split=None),
    ]


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "sets.jsonl"


def _only(path: Path) -> str:
    problems = check_file(path)
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


def test_field_types_cover_the_record_schema() -> None:
    assert tuple(FIELD_TYPES) == RECORD_FIELDS


def test_valid_file_passes_and_loads(file: Path) -> None:
    rows = _valid_rows()
    _write(file, [rows[0], "", *rows[1:]])  # blank lines are skipped
    assert check_file(file) == []
    assert load_isomer_file(file) == rows


def test_problem_str() -> None:
    assert str(Problem("a.jsonl", 3, "answer", "bad")) == "a.jsonl:3: answer: bad"
    assert str(Problem("a.jsonl", None, None, "file does not exist")) == "a.jsonl: file does not exist"


def test_missing_and_empty_file(tmp_path: Path) -> None:
    assert _only(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: file does not exist"
    assert _only(tmp_path) == f"{tmp_path}: not a regular file"
    empty = _write(tmp_path / "empty.jsonl", [""])
    assert _only(empty) == f"{empty}: no records (the file is empty)"


def test_invalid_json_line(file: Path) -> None:
    rows = _valid_rows()[:2]
    _write(file, [rows[0], '{"id": "x",', rows[1]])
    assert _only(file).startswith(f"{file}:2: invalid JSON (")


def test_line_not_an_object(file: Path) -> None:
    rows = _valid_rows()[:2]
    _write(file, [rows[0], rows[1], "[1, 2]"])
    assert _only(file) == f"{file}:3: each line must be a JSON object, got list"


def test_not_utf8(file: Path) -> None:
    rows = _valid_rows()[:2]
    file.write_bytes((json.dumps(rows[0]) + "\n" + json.dumps(rows[1]) + "\n").encode() + b'{"id": "\xff"}\n')
    assert _only(file) == f"{file}:3: not UTF-8 text (byte 9)"


@pytest.mark.parametrize("field", ["id", "domain", "question", "answer", "answer_type"])
def test_missing_required_field(file: Path, field: str) -> None:
    rows = _valid_rows()[:2]
    del rows[1][field]
    _write(file, rows)
    record_level = [str(p) for p in check_file(file) if p.line == 2]
    assert record_level == [f"{file}:2: {field}: required field is missing"]


def test_missing_instance_id(file: Path) -> None:
    rows = _valid_rows()[:3]
    del rows[2]["instance_id"]
    _write(file, rows)
    assert _only(file) == f"{file}:3: instance_id: required field is missing"


def test_null_required_field(file: Path) -> None:
    rows = _valid_rows()[:2]
    rows[0]["question"] = None
    _write(file, rows)
    assert _only(file) == f"{file}:1: question: must not be null"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", 7, "must be a non-empty string, got 7"),
        ("question", "  ", 'must be a non-empty string, got "  "'),
        ("answer", 42, 'must be a non-empty string (write 42 as "42"), got 42'),
        ("answer_type", "float", 'must be one of int, fraction, bool, tri, label, entity, got "float"'),
        ("split", "test", 'must be one of train, val, id_test, ood_surface, ood_depth, stress, got "test"'),
        ("params", [1], "must be a JSON object, got [1]"),
        ("seed", True, "must be an integer, got true"),
        ("anchors", [1, "2"], 'must be a list of integers, got [1, "2"]'),
        (
            "canonical_trace",
            [{"op": "add"}],
            'must be a list of {"op": string, "args": list, "out": value} objects',
        ),
        ("shortcut", {"text": "x"}, 'must be null or {"text": string, "value": string, "correct": boolean}'),
        ("canonical_answer", 1.5, "must be a string, integer or boolean, got 1.5"),
        ("label_space", ["a", ""], 'must be a list of non-empty strings, got ["a", ""]'),
    ],
)
def test_wrong_field_type(file: Path, field: str, value: object, message: str) -> None:
    rows = _valid_rows()[:3]
    rows[1][field] = value
    if field in ("canonical_answer", "split"):
        # keep the set consistent so that only the type problem remains
        for r in rows:
            r[field] = value
    _write(file, rows)
    got = [str(p) for p in check_file(file) if p.line == 2]
    assert len(got) == 1, got
    assert got[0].startswith(f"{file}:2: {field}: {message}")


def test_null_optional_fields_count_as_absent(file: Path) -> None:
    rows = _valid_rows()[:2]
    for r in rows:
        r.update(skeleton=None, split=None, canonical_answer=None, gold_cot=None, anchors=None)
    _write(file, rows)
    assert check_file(file) == []


def test_answer_does_not_parse(file: Path) -> None:
    rows = _valid_rows()[:3]
    rows[0].update(answer="forty-two", gold_cot=None)
    _write(file, rows)
    assert (
        _only(file)
        == f"{file}:1: answer: 'forty-two' does not parse as 'int' (expected an integer such as \"42\")"
    )


def test_label_answer_not_in_label_space(file: Path) -> None:
    rows = _valid_rows()
    rows[3]["answer"] = "aunt"
    _write(file, rows)
    assert (
        _only(file)
        == f"{file}:4: answer: 'aunt' does not parse as 'label' (expected one of ['parent', 'uncle', 'cousin'])"
    )


@pytest.mark.parametrize("label_space", [None, []])
def test_label_needs_label_space(file: Path, label_space: object) -> None:
    rows = _valid_rows()
    rows[4]["label_space"] = label_space
    _write(file, rows)
    assert _only(file) == f"{file}:5: label_space: a non-empty list is required when answer_type is 'label'"


def test_label_space_clash_and_bool_label_space(file: Path) -> None:
    rows = _valid_rows()
    rows[3]["label_space"] = ["uncle", "Uncles", "cousin"]
    rows[5].update(answer_type="bool", answer="yes", label_space=["yes", "maybe"])
    rows[6].update(answer_type="bool", answer="yes")
    _write(file, rows)
    assert [str(p) for p in check_file(file)] == [
        f"{file}:4: label_space: 'uncle' and 'Uncles' are the same label once normalised",
        f"{file}:6: label_space: members ['maybe'] do not parse as 'bool'",
    ]


def test_duplicate_id(file: Path) -> None:
    rows = _valid_rows()
    rows[5]["id"] = "m-1"
    _write(file, rows)
    assert _only(file) == f"{file}:6: id: duplicate id 'm-1' (first used on line 1)"


def test_set_with_one_domain(file: Path) -> None:
    rows = _valid_rows()
    rows.append(_record("lonely", "s9", "law"))
    _write(file, rows)
    assert (
        _only(file)
        == f"{file}:8: instance_id: isomer set 's9': has 1 distinct domain(s); an isomer set needs at least 2"
    )


def test_domain_twice_in_a_set(file: Path) -> None:
    rows = _valid_rows()
    rows[2]["domain"] = "math"
    _write(file, rows)
    assert (
        _only(file)
        == f"{file}:1: instance_id: isomer set 's1': domain 'math' appears more than once (lines 1, 3)"
    )


def test_members_disagree_on_the_parsed_answer(file: Path) -> None:
    rows = _valid_rows()
    rows[6]["answer"] = "2/3"
    _write(file, rows)
    assert _only(file).startswith(
        f"{file}:6: instance_id: isomer set 's3': members disagree on the answer: '1/2' (line 6), '2/3' (line 7)"
    )


def test_members_disagree_on_canonical_answer(file: Path) -> None:
    rows = _valid_rows()
    rows[4]["canonical_answer"] = "up1down1"
    _write(file, rows)
    assert _only(file) == (
        f"{file}:4: instance_id: isomer set 's2': members disagree on canonical_answer: "
        '"up2down1" (line 4), "up1down1" (line 5)'
    )


def test_canonical_answer_on_some_members_only(file: Path) -> None:
    rows = _valid_rows()
    del rows[1]["canonical_answer"]
    _write(file, rows)
    assert _only(file) == (
        f"{file}:1: instance_id: isomer set 's1': canonical_answer is given on lines 1, 3 but missing on line 2"
    )


def test_split_differs_within_a_set(file: Path) -> None:
    rows = _valid_rows()
    rows[2]["split"] = "id_test"
    del rows[1]["split"]
    _write(file, rows)
    assert _only(file) == (
        f"{file}:1: instance_id: isomer set 's1': split differs within the set: "
        "'train' (line 1), absent (line 2), 'id_test' (line 3)"
    )


def test_answer_type_differs_within_a_set(file: Path) -> None:
    rows = _valid_rows()
    rows[6]["answer_type"] = "int"
    rows[6]["answer"] = "1"
    _write(file, rows)
    assert _only(file) == (
        f"{file}:6: instance_id: isomer set 's3': answer_type differs within the set: "
        "'fraction' (line 6), 'int' (line 7)"
    )


def test_anchors_out_of_range_or_unsorted(file: Path) -> None:
    rows = _valid_rows()
    rows[0]["anchors"] = [5, 500]
    rows[1]["anchors"] = [10, 5]
    _write(file, rows)
    message = "anchors: must be ascending offsets between 0 and len(gold_cot) = 37"
    assert [str(p) for p in check_file(file)] == [f"{file}:1: {message}", f"{file}:2: {message}"]


def test_gold_cot_without_or_with_a_wrong_final_answer(file: Path) -> None:
    rows = _valid_rows()
    rows[0].update(gold_cot="Step 1: 6 × 7 = 42.", anchors=None)
    rows[1].update(gold_cot="Step 1: 6 × 7 = 42.\nThe answer is 43.", anchors=None)
    _write(file, rows)
    assert [str(p) for p in check_file(file)] == [
        f"{file}:1: gold_cot: no final answer found (end it with 'The answer is <answer>.')",
        f"{file}:2: gold_cot: final answer '43' differs from answer '42'",
    ]


def test_every_problem_is_reported_in_line_order(file: Path) -> None:
    rows = _valid_rows()
    rows[0]["answer_type"] = "number"
    rows[1]["seed"] = "zero"
    rows[4]["id"] = "k-1"
    rows[6]["answer"] = "2/3"
    _write(file, [*rows, "not json", _record("z", "s9")])
    got = [str(p) for p in check_file(file)]
    assert got == [
        f'{file}:1: answer_type: must be one of int, fraction, bool, tri, label, entity, got "number"',
        f"{file}:1: instance_id: isomer set 's1': answer_type differs within the set: "
        "'number' (line 1), 'int' (lines 2, 3)",
        f'{file}:2: seed: must be an integer, got "zero"',
        f"{file}:5: id: duplicate id 'k-1' (first used on line 4)",
        f"{file}:6: instance_id: isomer set 's3': members disagree on the answer: '1/2' (line 6), '2/3' (line 7)"
        " (an isomer set has one answer; give canonical_answer when labels differ by domain)",
        f"{file}:8: invalid JSON (Expecting value at column 1)",
        f"{file}:9: instance_id: isomer set 's9': has 1 distinct domain(s); an isomer set needs at least 2",
    ]


def test_load_isomer_file_raises_with_every_problem(file: Path) -> None:
    rows = [_record(f"r{i}", f"set{i}") for i in range(MAX_SHOWN + 3)]
    _write(file, rows)
    with pytest.raises(IsomerFileError) as info:
        load_isomer_file(file)
    err = info.value
    assert isinstance(err, InputError)
    assert len(err.problems) == MAX_SHOWN + 3
    text = str(err)
    assert text.startswith(f"{file}: {MAX_SHOWN + 3} problem(s) in isomer file:\n  {file}:1: instance_id:")
    assert f"{file}:{MAX_SHOWN}: instance_id" in text
    assert f"{file}:{MAX_SHOWN + 1}: instance_id" not in text
    assert text.endswith(f"... and 3 more (run `iga data check {file}` to list them all)")


def test_documented_example_is_valid(file: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "data-format.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    file.write_text(block.group(1), encoding="utf-8")
    records = load_isomer_file(file)
    assert [r["instance_id"] for r in records] == ["dose-1", "dose-1", "rel-7", "rel-7"]
