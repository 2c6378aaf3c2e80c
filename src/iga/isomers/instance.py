"""A logical instance: sampled once, domain-free, rendered into every domain of its isomer set.

Text is described abstractly: a :class:`Sentence` names a template kind of the skeleton's domain section and gives
its slot values; a :class:`Ref` stands for a domain word (the i-th word drawn from a pool, or a fixed key of a
table), and :class:`Join` for a list of words. The renderer binds refs to one domain's words, so every member of
an isomer set says the same thing with different nouns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ref:
    """A domain word: ``pool[index]`` after the pool is shuffled per rendering, or ``table[key]`` for a table.

    ``article`` asks for "a"/"an" in front (``Ref("concepts", 0, article=True)`` -> "a wumpus").
    """

    pool: str
    index: int | str
    article: bool = False


@dataclass(frozen=True)
class Join:
    """Several words joined as ``"x, y and z"`` (``conj`` is ``"and"`` or ``"or"``)."""

    items: tuple[Ref, ...]
    conj: str = "and"


SlotValue = int | str | Ref | Join


@dataclass(frozen=True)
class Sentence:
    """One template use: ``kind`` of the section's premises (or questions) with slot values."""

    kind: str
    slots: Mapping[str, SlotValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One solver step. ``op``/``args``/``out`` are domain-free (the canonical trace); ``slots`` feed the
    domain's step template for ``op``."""

    op: str
    args: tuple[Any, ...]
    out: Any
    slots: Mapping[str, SlotValue] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"op": self.op, "args": list(self.args), "out": self.out}


@dataclass(frozen=True)
class LogicalInstance:
    """Everything an isomer set shares. ``answer`` is canonical (e.g. ``"42"``, ``"2/3"``, ``"yes"``, ``"e2"``);
    ``answer_surface`` says how to say it in a domain (the same string, or a :class:`Ref`)."""

    skeleton: str
    family: str
    params: dict
    difficulty: dict
    premises: tuple[Sentence, ...]
    query: Sentence
    steps: tuple[Step, ...]
    answer: str
    answer_type: str
    answer_surface: SlotValue
    label_space: tuple[SlotValue, ...] = ()

    @property
    def canonical_trace(self) -> list[dict]:
        return [s.to_json() for s in self.steps]
