"""Validation of user-made isomer-set files (``iga data check FILE``) and the trainer's checked import path.

The schema is documented in ``docs/data-format.md``. Every problem in a file is reported, not just the first, as
``file:line: field: message``; a problem with a whole isomer set is reported on the line of the set's first record
with field ``instance_id``.

>>> import json, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sets.jsonl"
>>> rows = [{"id": d, "instance_id": "s1", "domain": d, "question": "?", "answer": "7", "answer_type": "int"}
...         for d in ("math", "law")]
>>> _ = path.write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> check_file(path)
[]
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iga.isomers.answers import Answer, format_answer, normalize_label, parse_answer, score_completion
from iga.isomers.record import ANSWER_TYPES, RECORD_FIELDS, REQUIRED_FIELDS, SPLITS
from iga.utils.io import InputError, dumps_canonical

#: How many problems :func:`load_isomer_file` spells out in its error message.
MAX_SHOWN = 5


@dataclass(frozen=True)
class Problem:
    """One problem in an isomer file; ``str()`` gives ``file:line: field: message``."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        return ": ".join(p for p in (where, self.field, self.message) if p)


class IsomerFileError(InputError):
    """An isomer file failed :func:`check_file`; ``problems`` holds every problem found."""

    def __init__(self, path: str | os.PathLike, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:MAX_SHOWN])
        rest = len(problems) - MAX_SHOWN
        more = f"\n  ... and {rest} more (run `iga data check {path}` to list them all)" if rest > 0 else ""
        super().__init__(f"{len(problems)} problem(s) in isomer file:\n{shown}{more}", file=path)


def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_trace(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(s, dict)
        and isinstance(s.get("op"), str)
        and isinstance(s.get("args"), list)
        and "out" in s
        for s in v
    )


def _is_shortcut(v: Any) -> bool:
    return v is None or (
        isinstance(v, dict)
        and isinstance(v.get("text"), str)
        and isinstance(v.get("value"), str)
        and isinstance(v.get("correct"), bool)
    )


#: Field → (type test, what the field must be). Keys are exactly ``RECORD_FIELDS``.
FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (_nonempty_str, "a non-empty string"),
    "instance_id": (_nonempty_str, "a non-empty string"),
    "skeleton": (_nonempty_str, "a non-empty string"),
    "family": (_nonempty_str, "a non-empty string"),
    "domain": (_nonempty_str, "a non-empty string"),
    "split": (lambda v: v in SPLITS, f"one of {', '.join(SPLITS)}"),
    "params": (lambda v: isinstance(v, dict), "a JSON object"),
    "difficulty": (lambda v: isinstance(v, dict), "a JSON object"),
    "question": (_nonempty_str, "a non-empty string"),
    "gold_cot": (lambda v: isinstance(v, str), "a string"),
    "answer": (_nonempty_str, 'a non-empty string (write 42 as "42")'),
    "answer_type": (lambda v: v in ANSWER_TYPES, f"one of {', '.join(ANSWER_TYPES)}"),
    "canonical_answer": (lambda v: isinstance(v, str | int | bool), "a string, integer or boolean"),
    "canonical_trace": (_is_trace, 'a list of {"op": string, "args": list, "out": value} objects'),
    "anchors": (lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers"),
    "label_space": (
        lambda v: isinstance(v, list) and all(map(_nonempty_str, v)),
        "a list of non-empty strings",
    ),
    "shortcut": (_is_shortcut, 'null or {"text": string, "value": string, "correct": boolean}'),
    "seed": (_is_int, "an integer"),
    "generator_version": (_nonempty_str, "a non-empty string"),
    "teacher_answer": (_nonempty_str, "null or a non-empty string (the noisy teacher's final answer)"),
}


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _lines(lines: list[int]) -> str:
    return ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines))


class _Checker:
    """Collects the problems of one file; record-level checks first, then one pass per isomer set."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.file = str(path)
        self.problems: list[Problem] = []
        self.records: list[tuple[int, dict]] = []
        self.parsed: dict[int, Answer] = {}  # line → parsed answer, for records whose answer parses

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, field, message))

    def read(self) -> None:
        # Not iter_jsonl: it stops at the first bad line, and a check must report them all.
        path = Path(self.file)
        if not path.is_file():
            self.add(None, None, "file does not exist" if not path.exists() else "not a regular file")
            return
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    self.add(lineno, None, f"not UTF-8 text (byte {e.start + 1})")
                    continue
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    self.add(lineno, None, f"invalid JSON ({e.msg} at column {e.colno})")
                    continue
                if not isinstance(obj, dict):
                    self.add(lineno, None, f"each line must be a JSON object, got {type(obj).__name__}")
                    continue
                self.records.append((lineno, obj))
        if not self.records and not self.problems:
            self.add(None, None, "no records (the file is empty)")

    def check_record(self, line: int, rec: dict) -> None:
        for field in RECORD_FIELDS:
            if rec.get(field) is None:  # null means absent (writers often emit null for "not given")
                if field in REQUIRED_FIELDS:
                    self.add(
                        line, field, "required field is missing" if field not in rec else "must not be null"
                    )
                continue
            test, expected = FIELD_TYPES[field]
            if field in rec and not test(rec[field]):
                self.add(line, field, f"must be {expected}, got {_show(rec[field])}")
        if self._field_ok(rec, "anchors") and self._field_ok(rec, "gold_cot"):
            cot_len, anchors = len(rec["gold_cot"]), rec["anchors"]
            if any(a < 0 or a > cot_len for a in anchors) or anchors != sorted(anchors):
                self.add(
                    line, "anchors", f"must be ascending offsets between 0 and len(gold_cot) = {cot_len}"
                )
        if self._field_ok(rec, "answer_type"):
            self._check_answer(line, rec)

    @staticmethod
    def _field_ok(rec: dict, field: str) -> bool:
        return rec.get(field) is not None and FIELD_TYPES[field][0](rec[field])

    def _check_answer(self, line: int, rec: dict) -> None:
        answer_type = rec["answer_type"]
        if rec.get("label_space") is not None and not self._field_ok(rec, "label_space"):
            return  # already reported; the answer cannot be judged without it
        label_space = rec.get("label_space")
        if answer_type in ("label", "entity"):
            if not label_space:
                self.add(
                    line, "label_space", f"a non-empty list is required when answer_type is {answer_type!r}"
                )
                return
            self._check_label_space(line, label_space)
        elif label_space:
            bad = [m for m in label_space if parse_answer(m, answer_type) is None]
            if bad:
                self.add(line, "label_space", f"members {bad} do not parse as {answer_type!r}")
        if not self._field_ok(rec, "answer"):
            return
        value = parse_answer(rec["answer"], answer_type, label_space=label_space)
        if value is None:
            hint = f"one of {label_space}" if answer_type in ("label", "entity") else _TYPE_HINTS[answer_type]
            self.add(line, "answer", f"{rec['answer']!r} does not parse as {answer_type!r} (expected {hint})")
            return
        self.parsed[line] = value
        if self._field_ok(rec, "gold_cot") and rec["gold_cot"].strip():
            result = score_completion(rec["gold_cot"], rec)
            if result.failed_extraction:
                self.add(line, "gold_cot", "no final answer found (end it with 'The answer is <answer>.')")
            elif not result.correct:
                self.add(
                    line,
                    "gold_cot",
                    f"final answer {result.extracted.text!r} differs from answer {rec['answer']!r}",
                )

    def _check_label_space(self, line: int, label_space: list[str]) -> None:
        seen: dict[str, str] = {}
        for member in label_space:
            key = normalize_label(member)
            if key in seen:
                self.add(
                    line, "label_space", f"{seen[key]!r} and {member!r} are the same label once normalised"
                )
            seen.setdefault(key, member)

    def check_ids(self) -> None:
        first: dict[str, int] = {}
        for line, rec in self.records:
            rid = rec.get("id")
            if not _nonempty_str(rid):
                continue
            if rid in first:
                self.add(line, "id", f"duplicate id {rid!r} (first used on line {first[rid]})")
            else:
                first[rid] = line

    def check_sets(self) -> None:
        sets: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for line, rec in self.records:
            if _nonempty_str(rec.get("instance_id")):
                sets[rec["instance_id"]].append((line, rec))
        for members in sets.values():
            self._check_set(members)

    def _check_set(self, members: list[tuple[int, dict]]) -> None:
        first_line = members[0][0]

        def report(message: str) -> None:
            self.add(first_line, "instance_id", f"isomer set {members[0][1]['instance_id']!r}: {message}")

        by_domain = _group(members, lambda r: r.get("domain") if _nonempty_str(r.get("domain")) else None)
        for domain, lines in by_domain.items():
            if len(lines) > 1:
                report(f"domain {domain!r} appears more than once ({_lines(lines)})")
        if len(by_domain) < 2:
            report(f"has {len(by_domain)} distinct domain(s); an isomer set needs at least 2")
        splits = _group(members, lambda r: r.get("split"), keep_none=True)
        if len(splits) > 1:
            report("split differs within the set: " + _describe(splits))
        types = _group(members, lambda r: r.get("answer_type"), keep_none=True)
        if len(types) > 1:
            report("answer_type differs within the set: " + _describe(types))
            return
        self._check_one_answer(members, report)

    def _check_one_answer(self, members: list[tuple[int, dict]], report: Callable[[str], None]) -> None:
        with_canonical = [line for line, rec in members if rec.get("canonical_answer") is not None]
        if with_canonical and len(with_canonical) < len(members):
            missing = [line for line, _ in members if line not in with_canonical]
            report(f"canonical_answer is given on {_lines(with_canonical)} but missing on {_lines(missing)}")
        elif with_canonical:
            answers = _group(members, lambda r: dumps_canonical(r["canonical_answer"]))
            if len(answers) > 1:
                report("members disagree on canonical_answer: " + _describe(answers, show=str))
        else:
            answer_type = members[0][1]["answer_type"]
            parsed: dict[str, list[int]] = defaultdict(list)
            for line, _ in members:
                if line in self.parsed:
                    parsed[format_answer(self.parsed[line], answer_type)].append(line)
            if len(parsed) > 1:
                report(
                    "members disagree on the answer: "
                    + _describe(parsed)
                    + " (an isomer set has one answer; give canonical_answer when labels differ by domain)"
                )


def _group(members: list[tuple[int, dict]], key: Callable[[dict], Any], keep_none: bool = False) -> dict:
    groups: dict[Any, list[int]] = defaultdict(list)
    for line, rec in members:
        k = key(rec)
        if k is not None or keep_none:
            groups[k].append(line)
    return dict(groups)


def _describe(groups: dict[Any, list[int]], show: Callable[[Any], str] = repr) -> str:
    return ", ".join(f"{'absent' if k is None else show(k)} ({_lines(v)})" for k, v in groups.items())


_TYPE_HINTS = {
    "int": 'an integer such as "42"',
    "fraction": 'a number such as "3/4", "1 1/2" or "0.25"',
    "bool": '"yes" or "no"',
    "tri": '"true", "false" or "unknown"',
}


def _run(path: str | os.PathLike) -> _Checker:
    checker = _Checker(path)
    checker.read()
    for line, rec in checker.records:
        checker.check_record(line, rec)
    checker.check_ids()
    checker.check_sets()
    # Stable sort: a record's own problems come first, then the set-level problems reported on its line.
    checker.problems.sort(key=lambda p: p.line or 0)
    return checker


def check_file(path: str | os.PathLike) -> list[Problem]:
    """Every problem in an isomer-set JSONL file (empty list: the file is valid)."""
    return _run(path).problems


def load_isomer_file(path: str | os.PathLike) -> list[dict]:
    """The records of a valid isomer file, in file order; raises :class:`IsomerFileError` (an ``InputError``) otherwise.

    Nothing is returned for a file with any problem, so a caller never trains on part of a bad file.
    """
    checker = _run(path)
    if checker.problems:
        raise IsomerFileError(path, checker.problems)
    return [rec for _, rec in checker.records]
