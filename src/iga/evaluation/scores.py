"""Per-record scores in both extraction modes, the unit every accuracy table and results file is built from.

Answer extraction itself lives in :mod:`iga.isomers.answers`; this module only runs it in ``strict`` and
``flexible`` mode and keeps what a researcher needs to audit a number: the completion, the extracted text and
value, the extraction method and the correctness flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MODES = ("strict", "flexible")


@dataclass(frozen=True)
class ModeScore:
    """Outcome of scoring one completion in one extraction mode."""

    correct: bool
    failed_extraction: bool
    text: str | None = None  # the span the extractor took as the answer
    value: Any = None  # its normalised value (int, Fraction, bool, str …); None when extraction failed
    method: str | None = None  # which extraction rule fired

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, Fraction):
            value = (
                f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
            )
        elif value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        return {
            "correct": self.correct,
            "failed_extraction": self.failed_extraction,
            "text": self.text,
            "value": value,
            "method": self.method,
        }


@dataclass(frozen=True)
class RecordScore:
    """One record's completion scored in both modes.

    >>> s = RecordScore("r1", "The answer is 5.", ModeScore(True, False, "5", 5), ModeScore(True, False, "5", 5))
    >>> s.correct("strict"), s.to_dict()["strict"]["value"]
    (True, 5)
    """

    id: str
    completion: str
    strict: ModeScore
    flexible: ModeScore

    def mode(self, mode: str) -> ModeScore:
        if mode not in MODES:
            raise ValueError(f"mode: unknown {mode!r}; allowed: {', '.join(MODES)}")
        return self.strict if mode == "strict" else self.flexible

    def correct(self, mode: str = "strict") -> bool:
        return self.mode(mode).correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "completion": self.completion,
            "strict": self.strict.to_dict(),
            "flexible": self.flexible.to_dict(),
        }


def _mode_score(result: Any) -> ModeScore:
    extracted = getattr(result, "extracted", None)
    return ModeScore(
        correct=bool(result.correct),
        failed_extraction=bool(result.failed_extraction),
        text=getattr(extracted, "text", None),
        value=getattr(extracted, "value", None),
        method=getattr(extracted, "method", None),
    )


def score_record(completion: str, record: Mapping) -> RecordScore:
    """Score ``completion`` against ``record`` with :func:`iga.isomers.answers.score_completion`, both modes."""
    from iga.isomers.answers import score_completion

    if "id" not in record:
        raise ValueError("record: missing field 'id'")
    return RecordScore(
        id=str(record["id"]),
        completion=completion,
        strict=_mode_score(score_completion(completion, record, mode="strict")),
        flexible=_mode_score(score_completion(completion, record, mode="flexible")),
    )
