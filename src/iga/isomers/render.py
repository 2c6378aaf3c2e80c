"""Instance x domain -> text: the question, the gold chain-of-thought (symbolic teacher) and its anchors.

Word pools are shuffled per (instance, domain, pool) from their own RNG stream, and templates are drawn from
another, so every member of an isomer set gets its own names and phrasing while the logic stays fixed. The CoT
is ``Step i: ...`` lines then ``The answer is X.``; ``anchors`` are character offsets into it: the final
character of every step line, then the first character of ``The answer is``.
"""

from __future__ import annotations

from dataclasses import dataclass

from iga.isomers.domains import Domain
from iga.isomers.errors import DomainError
from iga.isomers.instance import Join, LogicalInstance, Ref, SlotValue
from iga.isomers.rng import HashRng
from iga.isomers.skeletons.base import Skeleton
from iga.isomers.text import a_an, as_sentence, fill, join_words

ANSWER_PREFIX = "The answer is "


@dataclass(frozen=True)
class Rendering:
    """The domain-specific half of a record."""

    question: str
    gold_cot: str
    anchors: list[int]
    answer: str
    label_space: list[str]


class _Words:
    """Binds :class:`Ref` s to one domain's words (a fresh shuffle of each pool per rendering)."""

    def __init__(self, skeleton_id: str, domain: Domain, rng: HashRng) -> None:
        self.skeleton_id, self.domain, self.rng = skeleton_id, domain, rng
        self._bound: dict[str, list[str]] = {}

    def word(self, ref: Ref) -> str:
        pool = self.domain.pool(self.skeleton_id, ref.pool)
        if isinstance(ref.index, str):
            word = pool[ref.index]
        else:
            if ref.pool not in self._bound:
                self._bound[ref.pool] = self.rng.child("pool", ref.pool).shuffle(pool)
            words = self._bound[ref.pool]
            if ref.index >= len(words):
                raise DomainError(
                    f"{', '.join(self.domain.files)}: pool {ref.pool!r} of domain "
                    f"{self.domain.name!r} has {len(words)} words; this instance needs "
                    f"{ref.index + 1}"
                )
            word = words[ref.index]
        return a_an(word) if ref.article else word

    def text(self, value: SlotValue) -> str:
        if isinstance(value, Ref):
            return self.word(value)
        if isinstance(value, Join):
            return join_words([self.word(r) for r in value.items], value.conj)
        return str(value)


def render(inst: LogicalInstance, domain: Domain, rng: HashRng, *, hash_line: bool = False) -> Rendering:
    """Render ``inst`` in ``domain``; ``rng`` is the (instance, domain) stream."""
    section = domain.sections[inst.skeleton]
    words = _Words(inst.skeleton, domain, rng)
    pick = rng.child("templates")

    def filled(template: str, slots: dict) -> str:
        return fill(template, {k: words.text(v) for k, v in slots.items()})

    sentences = [
        as_sentence(filled(pick.choice(section.premises[s.kind]), dict(s.slots))) for s in inst.premises
    ]
    sentences.append(
        as_sentence(filled(pick.choice(section.questions[inst.query.kind]), dict(inst.query.slots)), "?")
    )
    answer = words.text(inst.answer_surface)
    lines, anchors, offset = [], [], 0
    for i, step in enumerate(inst.steps, start=1):
        line = f"Step {i}: {as_sentence(filled(section.steps[step.op], dict(step.slots)))}"
        lines.append(line)
        anchors.append(offset + len(line) - 1)
        offset += len(line) + 1
    anchors.append(offset)
    lines.append(f"{ANSWER_PREFIX}{answer}.")
    if hash_line:
        lines.append(f"#### {answer}")
    return Rendering(
        question=" ".join(sentences),
        gold_cot="\n".join(lines),
        anchors=anchors,
        answer=answer,
        label_space=[words.text(v) for v in inst.label_space],
    )


def render_narrative(skeleton: Skeleton, params: dict, domain: Domain, rng: HashRng) -> str:
    """Plain text for a base student: ``skeleton.narrative(params)`` in ``domain``'s words - premises and their
    consequences (``narration`` templates), no question, no chain of thought, no answer line.

    >>> from iga.isomers.domains import load_domains
    >>> from iga.isomers.skeletons import get_skeleton
    >>> sk = get_skeleton("M01")
    >>> render_narrative(sk, {"start": 7, "ops": [["add", 5]]}, load_domains()["medicine"], HashRng(0))
    'The patient gets 7 mg. The dose rises by 5 mg. So the dose is 12 mg.'
    """
    section = domain.sections[skeleton.id]
    words = _Words(skeleton.id, domain, rng)
    pick = rng.child("templates")
    out = []
    for sentence in skeleton.narrative(params):
        templates = section.narration.get(sentence.kind) or section.premises[sentence.kind]
        out.append(
            as_sentence(fill(pick.choice(templates), {k: words.text(v) for k, v in sentence.slots.items()}))
        )
    return " ".join(out)
