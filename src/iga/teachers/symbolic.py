"""The symbolic teacher: the generator's own gold CoT, behind the same interface as a model teacher.

IsoBench records carry a solver-written ``gold_cot``; distilling it is the "perfect teacher" setting. Its CoTs still
go through the strict answer check of :func:`iga.teachers.dataset.select_cots`, which then doubles as a sanity
check of the data (a generated suite passes it in full).

>>> teacher = SymbolicTeacher()
>>> teacher.propose([{"id": "r1", "gold_cot": "Step 1: 2 + 3 = 5.\\nThe answer is 5."}])
[['Step 1: 2 + 3 = 5.\\nThe answer is 5.']]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

SOURCE = "symbolic"


class SymbolicTeacher:
    """Proposes each record's ``gold_cot`` as its single candidate (``cot_source`` = ``"symbolic"``)."""

    source = SOURCE

    def describe(self) -> dict:
        return {"kind": SOURCE, "cot_from": "gold_cot"}

    def settings(self) -> dict:
        return {"decoding": "none", "samples": 1}

    def propose(self, records: Sequence[Mapping], *, progress: bool = True) -> list[list[str]]:
        """``[[record["gold_cot"]], ...]``; a record without a gold CoT (imported data) is an error."""
        for record in records:
            if not record.get("gold_cot"):
                raise ValueError(
                    f"record {record.get('id')!r}: field 'gold_cot' is missing or empty; the symbolic teacher copies "
                    "the generator's gold CoT, so use a model teacher (--teacher PATH) for data without one"
                )
        return [[record["gold_cot"]] for record in records]
