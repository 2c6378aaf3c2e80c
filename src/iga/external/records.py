"""Building our record dicts from a public benchmark's fields: ids, provenance, gold CoT and anchors.

Shared by the loaders in :mod:`iga.external.loaders`; every error is an ``InputError`` naming file, line, field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iga.utils.io import InputError


def record(
    fmt: str,
    index: int,
    path: Path,
    line: int | None,
    *,
    question: str,
    answer: str,
    answer_type: str,
    family: str,
    steps: Sequence[str] = (),
    split: str | None = None,
    label_space: Sequence[str] = (),
    source_id: Any = None,
) -> dict[str, Any]:
    """One single-domain record: ``id`` = ``instance_id`` = ``<fmt>-<index>``, ``domain`` = ``fmt``, ``source``.

    ``steps`` (a rationale, one step per item) become ``gold_cot`` and ``anchors`` through :func:`gold_cot`.
    """
    rid = f"{fmt}-{index:05d}"
    rec: dict[str, Any] = {
        "id": rid,
        "instance_id": rid,
        "domain": fmt,
        "family": family,
        "question": question.strip(),
        "answer": answer,
        "answer_type": answer_type,
        "source": {
            "format": fmt,
            "file": path.name,
            "line": line,
            **({"id": source_id} if source_id is not None else {}),
        },
    }
    if steps:
        rec["gold_cot"], rec["anchors"] = gold_cot(steps, answer)
    if label_space:
        rec["label_space"] = list(label_space)
    if split is not None:
        rec["split"] = split
    return rec


def gold_cot(steps: Sequence[str], answer: str) -> tuple[str, list[int]]:
    """Our CoT form of a rationale and its anchors (end of each step line, then start of ``The answer is``).

    >>> gold_cot(["Half of 48 is 24.", "48 + 24 = 72."], "72")
    ('Step 1: Half of 48 is 24.\\nStep 2: 48 + 24 = 72.\\nThe answer is 72.', [24, 46, 48])
    """
    lines, anchors, offset = [], [], 0
    for i, step in enumerate(steps, start=1):
        line = f"Step {i}: {step.strip()}"
        lines.append(line)
        anchors.append(offset + len(line) - 1)
        offset += len(line) + 1
    anchors.append(offset)
    lines.append(f"The answer is {answer}.")
    return "\n".join(lines), anchors


def require_text(obj: Mapping, name: str, path: Path, line: int | None, what: str, *, where: str = "") -> str:
    """``obj[name]`` if it is a non-empty string, else an ``InputError`` for field ``where + name``."""
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"got {type(value).__name__} {value!r:.40}"
        raise InputError(
            f"must be a non-empty string ({what}); {got}", file=path, line=line, field=where + name
        )
    return value


def nonempty(records: list[dict], path: Path) -> list[dict]:
    """``records``, or an ``InputError`` when a file held no example at all."""
    if not records:
        raise InputError("no examples found (empty file?)", file=path)
    return records
