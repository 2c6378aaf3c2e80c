"""The text a built-in student's base is pretrained on — and exactly what it contains.

A real pretrained LM knows the words of finance or cooking and knows that 7 × 8 = 56, but it has never been
taught our tasks. The base corpus imitates that:

1. **Domain paragraphs.** IsoBench instances are generated with a *separate* seed (``seed + 10_007``, so no train
   or evaluation instance is reused) in **every** domain — train, held-out and stress. Each problem statement
   loses its question (sentences ending in ``?``) and its shortcut cue; what remains is a paragraph of premises
   (facts, rules, quantities). The base therefore reads every domain's vocabulary and phrasing, but never a
   question, never a chain-of-thought and never an answer.
2. **Recaps.** Half of the paragraphs are followed by ``Recap:`` and their own sentences in another order. Real
   pretraining text repeats itself constantly (quotes, summaries, lists), which is how LMs learn to copy names and
   numbers from context; a base that cannot copy cannot be taught a CoT by a low-rank adapter in minutes.
3. **Arithmetic facts.** ``a + b = c``, ``a - b = c``, ``a × b = c``, ``a ÷ b = c`` over small numbers and
   fraction facts ``a/b of c is d``, in documents of eight — number knowledge a real LM has.

The tokenizer is trained on the same corpus plus the gold CoT lines of those separate-seed instances (so its
merges cover the ``Step i:`` format); the base model itself never trains on a CoT line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
CORPUS_SEED_OFFSET = 10_007


@dataclass(frozen=True)
class Corpus:
    documents: list[str]  # what the base model trains on
    tokenizer_texts: list[str]  # documents + CoT lines (tokenizer training only)
    fingerprint: str  # hash of all of the above


def _shuffle_key(seed: int, i: int) -> bytes:
    return hashlib.blake2b(f"corpus|{seed}|{i}".encode(), digest_size=8).digest()


def arithmetic_facts(max_sum: int = 40, max_factor: int = 12) -> list[str]:
    facts = []
    for a in range(max_sum + 1):
        for b in range(max_sum + 1 - a):
            facts.append(f"{a} + {b} = {a + b}.")
            facts.append(f"{a + b} - {b} = {a}.")
    for a in range(1, max_factor + 1):
        for b in range(1, max_factor + 1):
            facts.append(f"{a} × {b} = {a * b}.")
            facts.append(f"{a * b} ÷ {b} = {a}.")
            facts.append(f"{a}/{b} of {a * b * b} is {a * a * b}.")
    return facts


def premises(record: dict) -> list[str]:
    """The premise sentences of one record's question, in order (no question sentence, no shortcut cue)."""
    cue = (record.get("shortcut") or {}).get("text")
    return [
        s for s in _SENTENCE_END.split(record["question"].strip()) if s and not s.endswith("?") and s != cue
    ]


def premise_sentences(records: Sequence[dict]) -> list[str]:
    """Premise sentences of the records' questions, de-duplicated in order."""
    seen: dict[str, None] = {}
    for rec in records:
        for sent in premises(rec):
            seen.setdefault(sent, None)
    return list(seen)


RECAP_MODES = ("half", "all")


def _paragraph(record: dict, seed: int, index: int, recaps: str = "half") -> str:
    sents = premises(record)
    text = " ".join(sents)
    if len(sents) < 2 or (recaps == "half" and index % 2):
        return text
    # "half": even paragraphs get a shuffled recap. "all": every paragraph gets one, odd ones in the same order.
    order = list(range(len(sents)))
    if recaps == "half" or index % 2 == 0:
        order.sort(key=lambda i: _shuffle_key(seed + index, i))
    return text + " Recap: " + " ".join(sents[i] for i in order)


def copy_drill_documents(paragraphs: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` documents ``w1 … wk Again: w1 … wk``: k (8–16) words of the paragraphs, drawn with a seeded RNG."""
    import random

    words = sorted({w.strip(".,:;") for p in paragraphs for w in p.split()} - {"", "Recap"})
    rng = random.Random(f"copy-drills|{seed}")
    docs = []
    for _ in range(n):
        picked = [rng.choice(words) for _ in range(rng.randint(8, 16))]
        docs.append(" ".join(picked) + " Again: " + " ".join(picked))
    return docs


def build_corpus(
    *,
    seed: int = 0,
    domains_dir: str | None = None,
    preset: str = "small",
    max_sum: int = 40,
    max_factor: int = 12,
    recaps: str = "half",
    copy_drills: int = 0,
) -> Corpus:
    """The base's corpus.

    ``max_sum``/``max_factor`` bound the arithmetic facts; ``recaps`` is ``half`` (every other paragraph is followed
    by a shuffled recap) or ``all`` (every paragraph; odd ones in the same order); ``copy_drills`` adds that many
    documents ``w1 … wn Again: w1 … wn`` of 8–16 words and numbers drawn from the paragraphs (the classic way to
    grow induction heads fast; no sentence, no task).
    """
    from iga.isomers import generate_records, load_domains, make_config

    if recaps not in RECAP_MODES:
        raise ValueError(f"recaps must be one of {RECAP_MODES}, got {recaps!r}")
    config = make_config(preset, shortcut={"enabled": False})
    domains = load_domains(domains_dir)
    records = [
        r
        for split in generate_records(config, seed + CORPUS_SEED_OFFSET, domains=domains).values()
        for r in split
    ]
    paragraphs = [_paragraph(r, seed, i, recaps) for i, r in enumerate(records)]
    facts = arithmetic_facts(max_sum=max_sum, max_factor=max_factor)
    facts = [facts[i] for i in sorted(range(len(facts)), key=lambda i: _shuffle_key(seed, i))]
    docs = [p for p in paragraphs if p] + [" ".join(facts[i : i + 8]) for i in range(0, len(facts), 8)]
    docs += copy_drill_documents(paragraphs, copy_drills, seed)
    docs = [docs[i] for i in sorted(range(len(docs)), key=lambda i: _shuffle_key(seed + 1, i))]
    cot_lines = sorted({line for r in records for line in r["gold_cot"].splitlines()})
    fp = hashlib.sha256("\n".join([*docs, "<cot>", *cot_lines]).encode()).hexdigest()[:16]
    return Corpus(documents=docs, tokenizer_texts=docs + cot_lines, fingerprint=fp)
