"""How a record becomes model text: one place, shared by the trainer, the teachers and the evaluator.

The student sees ``prompt(record)`` and learns to continue it with ``completion(record)`` (the gold CoT). The
evaluation teacher-forces ``prompt + completion`` and pools hidden states at the CoT anchors, whose character
offsets (``record["anchors"]``, relative to ``gold_cot``) are shifted by ``len(prompt)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptFormat:
    """Plain-text format for base (non-chat) students.

    >>> fmt = PromptFormat()
    >>> fmt.prompt({"question": "What is 2 + 3?"})
    'Q: What is 2 + 3?\\nA:\\n'
    """

    # Ends in a newline so that tokenizing prompt and completion separately gives the same tokens as tokenizing
    # their concatenation (byte-level BPE would otherwise glue a trailing space to the CoT's first word).
    template: str = "Q: {question}\nA:\n"

    def prompt(self, record: Mapping) -> str:
        return self.template.format(question=record["question"])

    def completion(self, record: Mapping, cot_field: str = "gold_cot") -> str:
        return record[cot_field]

    def text(self, record: Mapping, cot_field: str = "gold_cot") -> str:
        return self.prompt(record) + self.completion(record, cot_field)

    def anchor_offsets(self, record: Mapping) -> list[int]:
        """Character offsets of the CoT anchors in :meth:`text` (empty if the record has none)."""
        shift = len(self.prompt(record))
        anchors: Sequence[int] = record.get("anchors") or []
        return [shift + int(a) for a in anchors]
