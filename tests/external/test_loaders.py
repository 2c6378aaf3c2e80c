"""Loaders for public files (GSM8K, ProntoQA, FOLIO, CLUTRR) on fixtures written here, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iga.external.loaders import (
    CLUTRR_RELATIONS,
    load_clutrr,
    load_external,
    load_folio,
    load_gsm8k,
    load_prontoqa,
)
from iga.isomers.answers import extract_answer, score_completion
from iga.utils.io import InputError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list) -> Path:
    return _write(path, "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _all_score_their_own_answer(records: list[dict]) -> None:
    for r in records:
        assert score_completion(f"The answer is {r['answer']}.", r).correct, r["id"]


# ---------------------------------------------------------------- GSM8K
GSM = [
    {
        "question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in total?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nIn total she sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
    },
    {
        "question": "A shop sells 1,000 pens a day. How many pens in 3 days?",
        "answer": "1000 * 3 = 3000\n#### 3,000",
    },
    {"question": "Split 5 pies among 2 people.", "answer": "5 / 2 = 2.5\n#### 2.5"},
]


def test_gsm8k_lines_become_records_with_our_cot(tmp_path):
    recs = load_gsm8k(_jsonl(tmp_path / "gsm.jsonl", GSM), split="ood_surface")
    first = recs[0]
    assert first["id"] == first["instance_id"] == "gsm8k-00000" and first["domain"] == "gsm8k"
    assert (first["answer"], first["answer_type"], first["family"], first["split"]) == (
        "72",
        "int",
        "IsoArith",
        "ood_surface",
    )
    assert first["gold_cot"] == (
        "Step 1: Natalia sold 48/2 = 24 clips in May.\n"
        "Step 2: In total she sold 48+24 = 72 clips.\nThe answer is 72."
    )
    assert first["source"] == {"format": "gsm8k", "file": "gsm.jsonl", "line": 1}
    assert [r["answer"] for r in recs[1:]] == ["3000", "5/2"] and recs[2]["answer_type"] == "fraction"
    _all_score_their_own_answer(recs)


def test_gsm8k_errors_name_file_line_and_field(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [GSM[0], {"question": "q?", "answer": "no final line"}])
    with pytest.raises(InputError) as e:
        load_gsm8k(path)
    assert str(e.value).startswith(f"{path}:2: answer: no '#### N' final answer")
    path = _jsonl(tmp_path / "bad2.jsonl", [{"question": "q?", "answer": "x\n#### seven"}])
    with pytest.raises(
        InputError, match=r":1: answer: the final answer after '####' is not a number: 'seven'"
    ):
        load_gsm8k(path)
    path = _jsonl(tmp_path / "bad3.jsonl", ["{not json", GSM[0]])
    with pytest.raises(InputError, match=r"bad3.jsonl:1: invalid JSON"):
        load_gsm8k(path)
    with pytest.raises(
        InputError, match=r":1: question: must be a non-empty string \(the problem\); missing"
    ):
        load_gsm8k(_jsonl(tmp_path / "bad4.jsonl", [{"answer": "#### 1"}]))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\n\r#<>", blacklist_categories=["Cs"]),
            min_size=1,
            max_size=40,
        ).filter(str.strip),
        min_size=1,
        max_size=5,
    ),
    answer=st.integers(-(10**6), 10**6),
)
def test_gsm8k_rationales_of_any_shape_give_a_consistent_cot(tmp_path, steps, answer):
    path = _jsonl(tmp_path / "p.jsonl", [{"question": "Q?", "answer": "\n".join(steps) + f"\n#### {answer}"}])
    (rec,) = load_gsm8k(path)
    cot = rec["gold_cot"]
    assert rec["answer"] == str(answer)
    assert extract_answer(cot, "int").value == answer  # the CoT ends in the record's own answer
    lines = cot.split("\n")
    assert [cot[a] for a in rec["anchors"][:-1]] == [line[-1] for line in lines[:-1]]
    assert cot[rec["anchors"][-1] :].startswith("The answer is")


# ---------------------------------------------------------------- ProntoQA
def _pronto(answer: str, n: int) -> str:
    return json.dumps(
        {
            "question": "Every wumpus is a tumpus. Wren is a wumpus.",
            "query": f"True or false: Wren is a tumpus {n}.",
            "chain_of_thought": ["Wren is a wumpus.", "Wren is a tumpus."],
            "answer": answer,
        }
    )


def test_prontoqa_generator_output_and_logiclm_lists_load(tmp_path):
    text = (
        '{\n"example1": {"in_context_example0": {}, "test_example": ' + _pronto("True", 1) + "},\n"
        '"example2": {"test_example": ' + _pronto("False", 2) + "}\n}\n"
    )
    recs = load_prontoqa(_write(tmp_path / "p.json", text))
    assert [r["answer"] for r in recs] == ["yes", "no"] and recs[0]["answer_type"] == "bool"
    assert recs[1]["question"].endswith("Is the following statement true? Wren is a tumpus 2.")
    assert recs[0]["gold_cot"] == "Step 1: Wren is a wumpus.\nStep 2: Wren is a tumpus.\nThe answer is yes."
    assert recs[1]["source"] == {"format": "prontoqa", "file": "p.json", "line": 3, "id": "example2"}
    logiclm = [
        {
            "id": "ProntoQA_1",
            "context": "Cats are mammals. Tom is a cat.",
            "question": "Is the following statement true or false? Tom is a mammal.",
            "options": ["A) True", "B) False"],
            "answer": "A",
        },
        {
            "id": "ProntoQA_2",
            "context": "c",
            "question": "q",
            "options": ["A) True", "B) False"],
            "answer": "B",
        },
    ]
    recs = load_prontoqa(_write(tmp_path / "l.json", json.dumps(logiclm, indent=1)))
    assert [r["answer"] for r in recs] == ["yes", "no"] and "gold_cot" not in recs[0]
    _all_score_their_own_answer(recs)


def test_prontoqa_errors_name_file_line_and_field(tmp_path):
    text = (
        '{\n"example1": {"test_example": '
        + _pronto("True", 1)
        + '},\n"example2": {"test_example": '
        + _pronto("Maybe", 2)
        + "}\n}\n"
    )
    path = _write(tmp_path / "bad.json", text)
    with pytest.raises(InputError) as e:
        load_prontoqa(path)
    assert str(e.value) == f"{path}:3: example2.test_example.answer: must be True or False; got 'Maybe'"
    logiclm = [
        {"id": "P1", "context": "c", "question": "q", "options": ["A) True", "B) False"], "answer": "C"}
    ]
    path = _write(tmp_path / "bad2.json", json.dumps(logiclm, indent=1))
    with pytest.raises(
        InputError, match=r"bad2.json:3: \[0\].answer: must be the letter of one of the options"
    ):
        load_prontoqa(path)
    with pytest.raises(InputError, match=r"bad3.json:2: invalid JSON \(Expecting value at column 13\)"):
        load_prontoqa(_write(tmp_path / "bad3.json", '{\n"example1": x\n}\n'))
    with pytest.raises(InputError, match=r"bad4.json:1: the top level must be an object of examples"):
        load_prontoqa(_write(tmp_path / "bad4.json", '"just a string"'))


# ---------------------------------------------------------------- FOLIO
FOLIO = [
    {
        "story_id": 1,
        "premises": ["All dogs bark.", "Rex is a dog."],
        "conclusion": "Rex barks.",
        "label": "True",
        "example_id": 10,
    },
    {"premises": "All dogs bark.\nRex is a cat.", "conclusion": "Rex barks.", "label": "Uncertain"},
    {"premises": "No cats bark.\nTom is a cat.", "conclusion": "Tom barks.", "label": "False"},
]


def test_folio_v1_and_v2_lines_become_tri_records(tmp_path):
    recs = load_folio(_jsonl(tmp_path / "f.jsonl", FOLIO))
    assert [r["answer"] for r in recs] == ["true", "unknown", "false"]
    assert recs[0]["question"].startswith("All dogs bark.\nRex is a dog.\n\nBased only on these premises")
    assert recs[0]["question"].endswith("\nRex barks.") and recs[0]["source"]["id"] == 10
    _all_score_their_own_answer(recs)


def test_folio_errors_name_file_line_and_field(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [FOLIO[0], {**FOLIO[1], "label": "Maybe"}])
    with pytest.raises(InputError) as e:
        load_folio(path)
    assert str(e.value) == f"{path}:2: label: must be one of True, False, Uncertain; got 'Maybe'"
    with pytest.raises(InputError, match=r":1: premises: must be a non-empty string or a list of strings"):
        load_folio(_jsonl(tmp_path / "bad2.jsonl", [{**FOLIO[0], "premises": [1, 2]}]))


# ---------------------------------------------------------------- CLUTRR
HF_CSV = (
    ",id,story,query,target,target_text,clean_story\n"
    "0,a1,[Scott] and [Lewis] are brothers. [Jason] is father of their father,\"('Jason', 'Lewis')\",10,"
    "grandson,x\n"
    '1,a2,"[Jason] and his wife [Gabrielle] baked a cake for [Lisa],\nhis daughter.",'
    "\"('Gabrielle', 'Lisa')\",16,daughter,x\n"
    "2,a3,[Ann] is [Bo]'s aunt.,\"('Bo', 'Ann')\",0,aunt,x\n"
)
GEN_CSV = (
    "id,story,query,text_query,target,text_target\n"
    "g1,[Ann] is the mother of [Bo].,\"('Bo', 'Ann')\",,mother,Ann is the mother of Bo\n"
)


def test_clutrr_csv_of_both_releases_becomes_label_records(tmp_path):
    recs = load_clutrr(_write(tmp_path / "c.csv", HF_CSV))
    assert [r["answer"] for r in recs] == ["grandson", "daughter", "aunt"]
    assert recs[0]["question"] == (
        "Scott and Lewis are brothers. Jason is father of their father\nWhat relation is Lewis to Jason?"
    )
    assert [r["source"]["line"] for r in recs] == [2, 3, 5]  # the quoted story of row 2 spans two lines
    assert recs[0]["label_space"] == list(CLUTRR_RELATIONS) and recs[0]["answer_type"] == "label"
    (gen,) = load_clutrr(_write(tmp_path / "g.csv", GEN_CSV))
    assert gen["answer"] == "mother" and gen["source"]["id"] == "g1"
    _all_score_their_own_answer([*recs, gen])


def test_clutrr_errors_name_file_line_and_field(tmp_path):
    path = _write(tmp_path / "bad.csv", HF_CSV.replace("\"('Bo', 'Ann')\"", "Bo and Ann"))
    with pytest.raises(InputError) as e:
        load_clutrr(path)
    assert str(e.value).startswith(f"{path}:5: query: must be a pair of names like")
    path = _write(tmp_path / "bad2.csv", "id,tale,query,target\n1,x,y,z\n")
    with pytest.raises(InputError) as e:
        load_clutrr(path)
    assert str(e.value).startswith(f"{path}:1: header: missing column(s) story;")
    with pytest.raises(InputError, match=r"bad3.csv:2: target: unknown relation 'cousin'"):
        load_clutrr(_write(tmp_path / "bad3.csv", GEN_CSV.replace(",mother,", ",cousin,")))


def test_load_external_checks_format_split_and_emptiness(tmp_path):
    path = _jsonl(tmp_path / "gsm.jsonl", GSM[:1])
    assert load_external("gsm8k", path, split="stress")[0]["split"] == "stress"
    with pytest.raises(ValueError, match="format: must be one of gsm8k, prontoqa, folio, clutrr, got 'bbh'"):
        load_external("bbh", path)
    with pytest.raises(ValueError, match="split: must be one of train"):
        load_external("gsm8k", path, split="test")
    with pytest.raises(InputError, match=r"empty.jsonl: no examples found"):
        load_external("folio", _write(tmp_path / "empty.jsonl", "\n"))
    with pytest.raises(InputError, match=r"missing.csv: file does not exist"):
        load_external("clutrr", tmp_path / "missing.csv")
