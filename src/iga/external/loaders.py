"""Loaders for public benchmark files a user already has (never bundled): GSM8K, ProntoQA, FOLIO, CLUTRR.

Each loader turns one file into our record dicts (``docs/data-format.md``): ``id``, ``instance_id`` (= ``id``),
``domain`` (the benchmark's name), ``question``, ``answer``, ``answer_type``, ``family``, ``source`` (format, file
name, line) and, where the file has a rationale, ``gold_cot`` in our ``Step i: …`` / ``The answer is X.`` form
with its ``anchors``. Records are single-domain: they serve evaluation (``iga eval-external --records FILE``, or
:func:`iga.evaluation.evaluate_records`), not IGA training, and ``iga data check`` reports them as one-domain sets.

A file in the wrong format stops at the first problem with ``file:line: field: message`` (``InputError``).

Expected input (one example each):

* GSM8K JSONL — ``{"question": "...", "answer": "rationale lines\\n#### 72"}``; ``<<48/2=24>>`` calculator
  annotations are dropped from the rationale. Answer type ``int`` (``fraction`` if the final answer is not whole).
* ProntoQA JSON — the generator's output ``{"example1": {"test_example": {"question": facts, "query": "True or
  false: Wren is not bitter.", "chain_of_thought": [...], "answer": "False"}, ...}, ...}``, or the Logic-LM list
  ``[{"id": ..., "context": facts, "question": "Is the following statement true or false? ...", "options": ["A)
  True", "B) False"], "answer": "A"}]``. Answer type ``bool`` (``yes`` = true).
* FOLIO JSONL — ``{"premises": "line\\nline" or [...], "conclusion": "...", "label": "True|False|Uncertain"}``
  (v1 and v2 field names; ``example_id`` kept when present). Answer type ``tri`` (``Uncertain`` → ``unknown``).
* CLUTRR CSV — the generator's or the Hugging Face release's columns ``story``, ``query`` (``"('Ann', 'Bob')"``)
  and the relation in ``target_text`` (HF) or ``target`` (generator); ``[Name]`` brackets are removed. The asked
  relation is *what the second person is to the first* (``('Jason', 'Lewis')`` + ``grandson``: Lewis is Jason's
  grandson). Answer type ``label`` over CLUTRR's 21 relations.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from iga.external.records import nonempty, record, require_text
from iga.utils.io import InputError, iter_jsonl

#: CLUTRR's relation vocabulary, in its index order (the Hugging Face release's ``target`` integers).
CLUTRR_RELATIONS = tuple(
    [
        "aunt",
        "son-in-law",
        "grandfather",
        "brother",
        "sister",
        "father",
        "mother",
        "grandmother",
        "uncle",
        "daughter-in-law",
        "grandson",
        "granddaughter",
        "father-in-law",
        "mother-in-law",
        "nephew",
        "son",
        "daughter",
        "niece",
        "husband",
        "wife",
        "sister-in-law",
    ]
)
FOLIO_LABELS = {"true": "true", "false": "false", "uncertain": "unknown", "unknown": "unknown"}


# ---------------------------------------------------------------- GSM8K
_CALC = re.compile(r"<<[^<>]*>>")


def load_gsm8k(path: str | os.PathLike, *, split: str | None = None) -> list[dict]:
    """GSM8K JSONL (``question``, ``answer`` ending in ``#### N``) → ``int``/``fraction`` records with gold CoT."""
    from iga.isomers.answers import format_answer, parse_answer

    path, out = Path(path), []
    for lineno, obj in iter_jsonl(path):
        question = require_text(obj, "question", path, lineno, "the problem")
        raw = require_text(obj, "answer", path, lineno, "the rationale ending in '#### N'")
        rationale, sep, final = raw.rpartition("####")
        if not sep:
            raise InputError(
                "no '#### N' final answer (a GSM8K answer ends with a line '#### 72')",
                file=path,
                line=lineno,
                field="answer",
            )
        final = final.strip()
        value = parse_answer(final, "int")
        answer_type = "int"
        if value is None:
            value, answer_type = parse_answer(final, "fraction"), "fraction"
        if value is None:
            raise InputError(
                f"the final answer after '####' is not a number: {final!r}",
                file=path,
                line=lineno,
                field="answer",
            )
        steps = [s.strip() for s in _CALC.sub("", rationale).splitlines() if s.strip()]
        out.append(
            record(
                "gsm8k",
                len(out),
                path,
                lineno,
                question=question,
                answer=format_answer(value, answer_type),
                answer_type=answer_type,
                family="IsoArith",
                steps=steps,
                split=split,
            )
        )
    return nonempty(out, path)


# ---------------------------------------------------------------- FOLIO
def load_folio(path: str | os.PathLike, *, split: str | None = None) -> list[dict]:
    """FOLIO JSONL (``premises``, ``conclusion``, ``label``) → ``tri`` records (``Uncertain`` → ``unknown``)."""
    path, out = Path(path), []
    for lineno, obj in iter_jsonl(path):
        premises = obj.get("premises")
        if isinstance(premises, list) and premises and all(isinstance(p, str) for p in premises):
            premises = "\n".join(p.strip() for p in premises)
        if not isinstance(premises, str) or not premises.strip():
            raise InputError(
                "must be a non-empty string or a list of strings (the story's premises)",
                file=path,
                line=lineno,
                field="premises",
            )
        conclusion = require_text(obj, "conclusion", path, lineno, "the statement to judge")
        label = obj.get("label")
        if not isinstance(label, str) or label.strip().lower() not in FOLIO_LABELS:
            raise InputError(
                f"must be one of True, False, Uncertain; got {label!r}", file=path, line=lineno, field="label"
            )
        question = (
            f"{premises.strip()}\n\nBased only on these premises, is the following statement true, false, "
            f"or unknown?\n{conclusion.strip()}"
        )
        out.append(
            record(
                "folio",
                len(out),
                path,
                lineno,
                question=question,
                answer=FOLIO_LABELS[label.strip().lower()],
                answer_type="tri",
                family="IsoDeduce",
                split=split,
                source_id=obj.get("example_id"),
            )
        )
    return nonempty(out, path)


# ---------------------------------------------------------------- ProntoQA
def _line_of(text: str, needle: str) -> int | None:
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def _bool_answer(value: Any, path: Path, line: int | None, field: str) -> str:
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in ("true", "false"):
        raise InputError(f"must be True or False; got {value!r}", file=path, line=line, field=field)
    return "yes" if word == "true" else "no"


def _prontoqa_generator(data: Mapping, text: str, path: Path, split: str | None) -> Iterator[dict]:
    for index, (key, example) in enumerate(data.items()):
        line = _line_of(text, json.dumps(key))
        test = example.get("test_example") if isinstance(example, Mapping) else None
        if not isinstance(test, Mapping):
            raise InputError(
                "must be an object with a 'test_example' object (ProntoQA generator output)",
                file=path,
                line=line,
                field=str(key),
            )
        where = f"{key}.test_example."
        facts = require_text(test, "question", path, line, "the facts", where=where)
        query = require_text(test, "query", path, line, "'True or false: ...'", where=where)
        answer = _bool_answer(test.get("answer"), path, line, where + "answer")
        cot = test.get("chain_of_thought") or []
        if not (isinstance(cot, list) and all(isinstance(s, str) for s in cot)):
            raise InputError(
                "must be a list of strings", file=path, line=line, field=where + "chain_of_thought"
            )
        statement = re.sub(r"^\s*true\s+or\s+false\s*:\s*", "", query, flags=re.IGNORECASE)
        yield record(
            "prontoqa",
            index,
            path,
            line,
            question=f"{facts.strip()}\nIs the following statement true? {statement.strip()}",
            answer=answer,
            answer_type="bool",
            family="IsoDeduce",
            steps=cot,
            split=split,
            source_id=key,
        )


def _prontoqa_logiclm(data: Sequence, text: str, path: Path, split: str | None) -> Iterator[dict]:
    for index, example in enumerate(data):
        where = f"[{index}]."
        if not isinstance(example, Mapping):
            raise InputError(
                "must be an object with 'context', 'question' and 'answer'", file=path, field=f"[{index}]"
            )
        line = _line_of(text, json.dumps(example["id"])) if isinstance(example.get("id"), str) else None
        context = require_text(example, "context", path, line, "the facts", where=where)
        question = require_text(example, "question", path, line, "the statement to judge", where=where)
        letter = str(example.get("answer", "")).strip().upper()
        options = {str(o).strip()[:1].upper(): str(o) for o in example.get("options") or []}
        chosen = options.get(letter, "")
        if not chosen:
            raise InputError(
                f"must be the letter of one of the options {sorted(options)}; got {example.get('answer')!r}",
                file=path,
                line=line,
                field=where + "answer",
            )
        answer = _bool_answer(re.sub(r"^[A-Z]\)\s*", "", chosen), path, line, where + "options")
        yield record(
            "prontoqa",
            index,
            path,
            line,
            question=f"{context.strip()}\n{question.strip()}",
            answer=answer,
            answer_type="bool",
            family="IsoDeduce",
            split=split,
            source_id=example.get("id"),
        )


def load_prontoqa(path: str | os.PathLike, *, split: str | None = None) -> list[dict]:
    """ProntoQA JSON (generator output or the Logic-LM list) → ``bool`` records, with gold CoT when present."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", file=path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", file=path, line=e.lineno) from None
    if isinstance(data, Mapping):
        records = list(_prontoqa_generator(data, text, path, split))
    elif isinstance(data, list):
        records = list(_prontoqa_logiclm(data, text, path, split))
    else:
        raise InputError(
            "the top level must be an object of examples (generator output) or a list (Logic-LM)",
            file=path,
            line=1,
        )
    return nonempty(records, path)


# ---------------------------------------------------------------- CLUTRR
def _clutrr_relation(row: Mapping[str, str], path: Path, line: int) -> str:
    for column in ("target_text", "target"):
        value = (row.get(column) or "").strip().lower()
        if value in CLUTRR_RELATIONS:
            return value
        if column == "target" and value.isdigit() and int(value) < len(CLUTRR_RELATIONS):
            return CLUTRR_RELATIONS[int(value)]
    got = row.get("target_text") or row.get("target")
    raise InputError(
        f"unknown relation {got!r}; CLUTRR relations: {', '.join(CLUTRR_RELATIONS)}",
        file=path,
        line=line,
        field="target_text" if "target_text" in row else "target",
    )


def load_clutrr(path: str | os.PathLike, *, split: str | None = None) -> list[dict]:
    """CLUTRR CSV (``story``, ``query``, ``target_text``/``target``) → ``label`` records over 21 relations."""
    path, out = Path(path), []
    if not path.exists():
        raise InputError("file does not exist", file=path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        missing = [c for c in ("story", "query") if c not in columns]
        if missing or not columns & {"target", "target_text"}:
            need = missing + ([] if columns & {"target", "target_text"} else ["target_text (or target)"])
            raise InputError(
                f"missing column(s) {', '.join(need)}; a CLUTRR CSV has story, query and "
                "target_text (Hugging Face) or target (generator)",
                file=path,
                line=1,
                field="header",
            )
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1  # a quoted story may span several physical lines
            story = (row.get("story") or "").replace("[", "").replace("]", "").strip()
            if not story:
                raise InputError("must be a non-empty story", file=path, line=line, field="story")
            try:
                pair = ast.literal_eval((row.get("query") or "").strip())
            except (ValueError, SyntaxError):
                pair = None
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise InputError(
                    f"must be a pair of names like \"('Ann', 'Bob')\"; got {row.get('query')!r}",
                    file=path,
                    line=line,
                    field="query",
                )
            first, second = pair
            question = f"{story}\nWhat relation is {second} to {first}?"
            out.append(
                record(
                    "clutrr",
                    len(out),
                    path,
                    line,
                    question=question,
                    answer=_clutrr_relation(row, path, line),
                    answer_type="label",
                    family="IsoRelate",
                    split=split,
                    label_space=CLUTRR_RELATIONS,
                    source_id=row.get("id") or None,
                )
            )
    return nonempty(out, path)


#: ``iga data import --format NAME`` → loader.
LOADERS: dict[str, Callable[..., list[dict]]] = {
    "gsm8k": load_gsm8k,
    "prontoqa": load_prontoqa,
    "folio": load_folio,
    "clutrr": load_clutrr,
}


def load_external(fmt: str, path: str | os.PathLike, *, split: str | None = None) -> list[dict]:
    """Records of ``path`` read as ``fmt`` (one of ``LOADERS``)."""
    from iga.isomers.record import SPLITS

    if fmt not in LOADERS:
        raise ValueError(f"format: must be one of {', '.join(LOADERS)}, got {fmt!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    return LOADERS[fmt](path, split=split)
