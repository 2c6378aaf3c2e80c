"""Typed answers: parse, extract from a completion, compare, score, format.

One module serves the evaluator, the teachers' rejection sampling and ``iga data check``, so every part of the
project reads an answer the same way. ``docs/data-format.md`` states the rules for users; in short:

* :func:`parse_answer` turns a span that should *be* an answer into a canonical value: ``int`` → ``int``,
  ``fraction`` → :class:`~fractions.Fraction`, ``bool`` → ``True``/``False``, ``tri`` → ``"true"``/``"false"``/
  ``"unknown"``, ``label``/``entity`` → the matching member of ``label_space``.
* :func:`extract_answer` finds the span: the last ``The answer is …``, else the last ``#### …``, else the last
  ``\\boxed{…}``; ``flexible`` mode then falls back to the last number or the last in-vocabulary word.
* :func:`answers_match` compares typed values; fractions are exact in ``strict`` mode and within
  :data:`FRACTION_TOLERANCE` in ``flexible`` mode.

>>> score_completion("Step 1: 6 × 7 = 42.\\nThe answer is **42**.", {"answer": "42", "answer_type": "int"}).correct
True
>>> extract_answer("Alex is the tallest, so Alex it is.", "entity", label_space=["Alex", "Sam"]).value is None
True
>>> extract_answer("Alex is the tallest.", "entity", mode="flexible", label_space=["Alex", "Sam"]).value
'Alex'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias

from iga.isomers._numbers import last_number, parse_number, strip_decorations
from iga.isomers.record import ANSWER_TYPES

Answer: TypeAlias = int | Fraction | bool | str

MODES = ("strict", "flexible")
TRI_VALUES = ("true", "false", "unknown")
#: Flexible-mode tolerance for ``fraction`` answers, so that ``0.3333`` counts for ``1/3``.
FRACTION_TOLERANCE = Fraction(5, 10_000)
METHODS = ("the_answer_is", "hash", "boxed", "fallback_number", "fallback_label")

_NUMERIC = ("int", "fraction")
_NAMED = ("label", "entity")

_BOOL_WORDS = {"yes": True, "true": True, "no": False, "false": False}
_TRI_WORDS = {"yes": "true", "true": "true", "no": "false", "false": "false"} | dict.fromkeys(
    (
        "unknown",
        "cannot be determined",
        "cannot determine",
        "cannot be known",
        "cannot tell",
        "cannot say",
        "undetermined",
        "indeterminate",
        "uncertain",
        "not determinable",
        "not enough information",
        "insufficient information",
        "not enough info",
        "not enough evidence",
        "impossible to determine",
        "not possible to determine",
        "neither true nor false",
    ),
    "unknown",
)
# Outside an exact match, a sentence that also holds one of these may be saying the opposite ("not true").
_NEGATIONS = frozenset(
    {"not", "no", "never", "neither", "nor", "cannot", "isnt", "arent", "doesnt", "dont", "wasnt"}
)
_ARTICLES = frozenset({"a", "an", "the"})
_CLAUSE_BREAK_RE = re.compile(r",\s|;|\s\(|\s[-–—]\s|\s(?:because|since|as)\s", re.IGNORECASE)

_ANSWER_IS_RE = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b[ \t]*:?", re.IGNORECASE)
_HASH_RE = re.compile(r"####")
_BOXED_RE = re.compile(r"\\boxed\s*\{")
# A sentence ends at . ! ? followed (after closing quotes/emphasis) by whitespace or the end: "3.5" does not end it.
_SENTENCE_END_RE = re.compile(r"[.!?](?=[*_\"'”’)\]}$]*(?:\s|$))")


@dataclass(frozen=True)
class ExtractedAnswer:
    """What :func:`extract_answer` found: the span, its parsed value, and which rule found it (None: nothing)."""

    text: str | None
    value: Answer | None
    method: str | None


@dataclass(frozen=True)
class ScoreResult:
    """Result of :func:`score_completion`; ``failed_extraction`` is True when no answer could be parsed."""

    correct: bool
    extracted: ExtractedAnswer
    failed_extraction: bool


def _check_type(answer_type: str) -> None:
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; allowed: {', '.join(ANSWER_TYPES)}")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")


def _words(text: str, *, plural: bool) -> tuple[str, ...]:
    """Comparison key: case-folded words without punctuation or articles (and a plural ``s`` if asked)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\bcan(?:'|’)?t\b|\bcan not\b", "cannot", text)
    text = re.sub(r"['’]", "", text)
    words = [w for w in re.split(r"[\W_]+", text) if w and w not in _ARTICLES]
    if plural:
        # Only a bare trailing s: "nieces" → "niece", while "boss" and short words stay as they are.
        words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
    return tuple(words)


def normalize_label(text: str) -> str:
    """The form two labels are compared in: case-folded words, no punctuation, articles or plural ``s``.

    >>> normalize_label("The Uncle/Aunts.")
    'uncle aunt'
    """
    return " ".join(_words(text, plural=True))


def _vocabulary(
    answer_type: str, label_space: Sequence[str] | None, synonyms: Mapping[str, str] | None
) -> dict[tuple[str, ...], Answer | None]:
    """Normalised phrase → value for the categorical types; None marks a phrase shared by two members."""
    if answer_type == "bool":
        return {(w,): v for w, v in _BOOL_WORDS.items()}
    if answer_type == "tri":
        return {_words(w, plural=False): v for w, v in _TRI_WORDS.items()}
    if not label_space:
        raise ValueError(f"answer_type {answer_type!r} needs a non-empty label_space")
    vocab: dict[tuple[str, ...], Answer | None] = {}
    for member in label_space:
        key = _words(member, plural=True)
        vocab[key] = None if key in vocab and vocab[key] != member else member
    for phrase, member in (synonyms or {}).items():
        if member not in label_space:
            raise ValueError(
                f"synonym {phrase!r} maps to {member!r}, which is not in label_space {list(label_space)}"
            )
        vocab.setdefault(_words(phrase, plural=True), member)
    return vocab


def _find_phrases(
    words: tuple[str, ...], vocab: Mapping[tuple[str, ...], Answer | None]
) -> list[tuple[int, int, Answer | None]]:
    """Non-overlapping ``(start, end, value)`` occurrences, longest phrase first at each position."""
    longest = max(map(len, vocab), default=0)
    found, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            if words[i : i + n] in vocab:
                found.append((i, i + n, vocab[words[i : i + n]]))
                i += n
                break
        else:
            i += 1
    return found


def _parse_categorical(
    text: str, answer_type: str, vocab: Mapping[tuple[str, ...], Answer | None]
) -> Answer | None:
    plural = answer_type in _NAMED
    # 1. the whole span, 2. its first clause ("No, because ..."), 3. the one vocabulary phrase it mentions.
    for candidate in (text, _CLAUSE_BREAK_RE.split(text, maxsplit=1)[0]):
        key = _words(candidate, plural=plural)
        if key in vocab:
            return vocab[key]
    words = _words(text, plural=plural)
    found = _find_phrases(words, vocab)
    values = {v for _, _, v in found}
    if len(values) != 1 or None in values:
        return None
    inside = {i for start, end, _ in found for i in range(start, end)}
    if any(w in _NEGATIONS for i, w in enumerate(words) if i not in inside):
        return None
    return values.pop()


def parse_answer(
    text: str,
    answer_type: str,
    *,
    label_space: Sequence[str] | None = None,
    synonyms: Mapping[str, str] | None = None,
) -> Answer | None:
    """Canonical value of a span that should *be* an answer, or None if it does not parse as ``answer_type``.

    ``label_space`` is required for ``label``/``entity`` (and ignored otherwise); ``synonyms`` maps extra
    phrases to members of it (``{"mother": "parent"}``).

    >>> parse_answer("$1,000.", "int"), parse_answer(r"\\dfrac{3}{6}", "fraction"), parse_answer("Yes.", "bool")
    (1000, Fraction(1, 2), True)
    >>> parse_answer("It cannot be determined", "tri"), parse_answer("the Nieces", "label", label_space=["niece"])
    ('unknown', 'niece')
    """
    _check_type(answer_type)
    if answer_type in _NUMERIC:
        value = parse_number(text)
        if value is None:
            return None
        if answer_type == "fraction":
            return value
        return int(value) if value.denominator == 1 else None
    if answer_type in _NAMED and label_space and text.strip() in label_space:
        return text.strip()
    return _parse_categorical(
        strip_decorations(text), answer_type, _vocabulary(answer_type, label_space, synonyms)
    )


def _sentence(rest: str) -> str:
    """The answer span that starts ``rest``: up to the end of its line or sentence."""
    line = rest.split("\n", 1)[0]
    end = _SENTENCE_END_RE.search(line)
    return (line[: end.start()] if end else line).strip()


def _boxed_spans(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order."""
    spans = []
    for m in _BOXED_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append(text[m.end() : i - 1])
    return spans


def _marked_spans(completion: str) -> list[tuple[str, str]]:
    """``(method, span)`` for the last non-empty span of each marker, in extraction order."""
    candidates = [
        ("the_answer_is", [_sentence(completion[m.end() :]) for m in _ANSWER_IS_RE.finditer(completion)]),
        ("hash", [_sentence(completion[m.end() :]) for m in _HASH_RE.finditer(completion)]),
        ("boxed", [s.strip() for s in _boxed_spans(completion)]),
    ]
    return [(method, found[-1]) for method, spans in candidates if (found := [s for s in spans if s])]


def _fallback(
    completion: str,
    answer_type: str,
    label_space: Sequence[str] | None,
    synonyms: Mapping[str, str] | None,
) -> ExtractedAnswer | None:
    if answer_type in _NUMERIC:
        found = last_number(completion)
        if found is None:
            return None
        return ExtractedAnswer(found[0], parse_answer(found[0], answer_type), "fallback_number")
    vocab = _vocabulary(answer_type, label_space, synonyms)
    words = _words(strip_decorations(completion), plural=answer_type in _NAMED)
    found_phrases = [f for f in _find_phrases(words, vocab) if f[2] is not None]
    if not found_phrases:
        return None
    start, end, value = found_phrases[-1]
    return ExtractedAnswer(" ".join(words[start:end]), value, "fallback_label")


def extract_answer(
    completion: str,
    answer_type: str,
    *,
    mode: str = "strict",
    label_space: Sequence[str] | None = None,
    synonyms: Mapping[str, str] | None = None,
) -> ExtractedAnswer:
    """Find and parse the final answer of a completion.

    The markers are tried in order (last ``The answer is …`` up to the end of its sentence or line, last
    ``#### …``, last ``\\boxed{…}``); the first whose span parses wins. ``flexible`` mode then falls back to the
    last number (``int``/``fraction``) or the last vocabulary word (other types); ``strict`` never does. If
    nothing parses, the first span found is returned with ``value=None`` so a report can show it.

    >>> extract_answer("So 3 + 4 = 7.\\n#### 7", "int")
    ExtractedAnswer(text='7', value=7, method='hash')
    >>> extract_answer("So 3 + 4 = 7.", "int").method is None
    True
    """
    _check_type(answer_type)
    _check_mode(mode)
    if answer_type in _NAMED and not label_space:
        raise ValueError(f"answer_type {answer_type!r} needs a non-empty label_space")
    spans = _marked_spans(completion)
    for method, span in spans:
        value = parse_answer(span, answer_type, label_space=label_space, synonyms=synonyms)
        if value is not None:
            return ExtractedAnswer(span, value, method)
    if mode == "flexible":
        fallback = _fallback(completion, answer_type, label_space, synonyms)
        if fallback is not None and fallback.value is not None:
            return fallback
    if spans:
        return ExtractedAnswer(spans[0][1], None, spans[0][0])
    return ExtractedAnswer(None, None, None)


def _as_value(
    x: object, answer_type: str, label_space: Sequence[str] | None, synonyms: Mapping[str, str] | None
) -> Answer | None:
    """A string is parsed; a float goes through its shortest repr (0.1 → 1/10); other values must fit the type."""
    if isinstance(x, float):
        x = repr(x)
    if isinstance(x, str):
        return parse_answer(x, answer_type, label_space=label_space, synonyms=synonyms)
    if answer_type in _NUMERIC and isinstance(x, int | Fraction) and not isinstance(x, bool):
        return (
            Fraction(x) if answer_type == "fraction" else (int(x) if Fraction(x).denominator == 1 else None)
        )
    if answer_type == "bool" and isinstance(x, bool):
        return x
    raise TypeError(f"cannot compare a {type(x).__name__} as a {answer_type!r} answer; pass a string")


def answers_match(
    pred: object,
    gold: object,
    answer_type: str,
    *,
    mode: str = "strict",
    label_space: Sequence[str] | None = None,
    synonyms: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``pred`` and ``gold`` (strings or parsed values) are the same ``answer_type`` answer.

    An unparseable ``pred`` is simply wrong; an unparseable ``gold`` is a data error (``ValueError``).

    >>> answers_match("3/6", "1/2", "fraction"), answers_match("0.3333", "1/3", "fraction", mode="flexible")
    (True, True)
    """
    _check_type(answer_type)
    _check_mode(mode)
    gold_value = _as_value(gold, answer_type, label_space, synonyms)
    if gold_value is None:
        raise ValueError(f"gold answer {gold!r} does not parse as {answer_type!r}")
    pred_value = _as_value(pred, answer_type, label_space, synonyms)
    if pred_value is None:
        return False
    if answer_type == "fraction" and mode == "flexible":
        return abs(pred_value - gold_value) <= FRACTION_TOLERANCE
    return pred_value == gold_value


def score_completion(
    completion: str, record: Mapping, *, mode: str = "strict", synonyms: Mapping[str, str] | None = None
) -> ScoreResult:
    """Score a model completion against an IsoBench record (its ``answer``, ``answer_type``, ``label_space``).

    >>> r = {"answer": "1/2", "answer_type": "fraction"}
    >>> score_completion("The answer is 0.5.", r).correct, score_completion("Half of it.", r).failed_extraction
    (True, True)
    """
    for field in ("answer", "answer_type"):
        if field not in record:
            raise ValueError(f"record lacks field {field!r}")
    answer_type = record["answer_type"]
    label_space = record.get("label_space") or None
    extracted = extract_answer(completion, answer_type, mode=mode, label_space=label_space, synonyms=synonyms)
    if extracted.value is None:
        return ScoreResult(False, extracted, True)
    correct = answers_match(
        extracted.value, record["answer"], answer_type, mode=mode, label_space=label_space, synonyms=synonyms
    )
    return ScoreResult(correct, extracted, False)


def format_answer(value: Answer, answer_type: str) -> str:
    """Canonical string of a value; ``parse_answer(format_answer(v, t), t, ...) == v``.

    >>> format_answer(Fraction(6, 4), "fraction"), format_answer(Fraction(4, 2), "fraction"), format_answer(False, "bool")
    ('3/2', '2', 'no')
    """
    _check_type(answer_type)
    if answer_type in _NUMERIC and isinstance(value, int | Fraction) and not isinstance(value, bool):
        if answer_type == "int" and Fraction(value).denominator != 1:
            raise ValueError(f"{value} is not an integer")
        return str(Fraction(value))
    if answer_type == "bool" and isinstance(value, bool):
        return "yes" if value else "no"
    if answer_type == "tri" and value in TRI_VALUES:
        return str(value)
    if answer_type in _NAMED and isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a valid {answer_type!r} answer")
