"""Evaluate a student on a JSONL file of imported records (``iga data import``) with our own typed scorer.

The summary has the shape of a reasoning-gym result (:func:`iga.external.reasoning_gym.evaluate_task`), so both
print in one table and sit side by side in ``result.json``; here every score is 0 or 1, so ``mean_score`` equals
``accuracy``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

MODES = ("strict", "flexible")


def evaluate_file(
    model: Any,
    tokenizer: Any,
    path: str | os.PathLike,
    *,
    fmt: Any = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and score every record of ``path`` (JSONL with ``id``, ``question``, ``answer``, ``answer_type``)."""
    from iga.evaluation import evaluate_records
    from iga.models.prompting import PromptFormat
    from iga.utils.io import InputError, iter_jsonl

    path = Path(path)
    records = []
    for lineno, rec in iter_jsonl(path):
        for field in ("id", "question", "answer", "answer_type"):
            if field not in rec:
                raise InputError(
                    f"missing field {field!r} (import the file with `iga data import`)",
                    file=path,
                    line=lineno,
                    field=field,
                )
        records.append(rec)
    if not records:
        raise InputError("no records found (empty file?)", file=path)
    t0 = time.perf_counter()
    scores = evaluate_records(
        model,
        tokenizer,
        records,
        fmt=fmt or PromptFormat(),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    n = len(scores)
    summary: dict[str, Any] = {"task": f"file:{path.name}", "n": n, "generation_seconds": round(seconds, 2)}
    for mode in MODES:
        correct = sum(s.correct(mode) for s in scores)
        failures = sum(s.mode(mode).failed_extraction for s in scores)
        summary[mode] = {
            "accuracy": correct / n,
            "mean_score": correct / n,
            "extraction_failures": failures,
            "extraction_failure_rate": failures / n,
        }
    summary["items"] = [s.to_dict() for s in scores]
    return summary
