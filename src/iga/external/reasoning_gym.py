"""Evaluate a student on reasoning-gym tasks that match our families, scored by reasoning-gym itself.

reasoning-gym (Apache-2.0, pure Python) generates its items offline from a seed. For every item we prompt the
student with our prompt format, extract the final answer with our typed extraction (``The answer is …``, then
``####``, then ``\\boxed{}``; ``flexible`` mode adds the last-number / last-label fallback), turn the parsed value
into the string reasoning-gym expects (``Yes``/``No``, a plain number, a relation word) and let the dataset's own
``score_answer`` decide. An item counts as correct when it gets full credit (score 1.0); the mean score (partial
credit included) and the extraction failures are reported beside it.

Supported tasks (``TASKS``): ``gsm_symbolic`` and ``basic_arithmetic`` (IsoArith), ``syllogism`` and
``propositional_logic`` (IsoDeduce), ``family_relationships`` (IsoRelate). ``propositional_logic`` has no single
gold answer (any valid, non-trivial conclusion scores 1.0), so its answer is the raw ``The answer is …`` span.

>>> get_task("reasoning_gym:syllogism").family
'IsoDeduce'
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from iga.external import MissingPackageError

PREFIX = "reasoning_gym"
MODES = ("strict", "flexible")
# reasoning-gym's own relation vocabulary (graphs/family_relationships.py, Relationship enum), in its spelling.
FAMILY_RELATIONS = (
    "mother",
    "father",
    "sister",
    "brother",
    "daughter",
    "son",
    "wife",
    "husband",
    "grandmother",
    "grandfather",
    "aunt",
    "uncle",
    "niece",
    "nephew",
    "mother-in-law",
    "father-in-law",
)


def _number_text(value: Any) -> str:
    """A parsed number as reasoning-gym compares it: digits for integers, a decimal otherwise."""
    f = Fraction(value)
    return str(f.numerator) if f.denominator == 1 else repr(float(f))


@dataclass(frozen=True)
class RGTask:
    """How one reasoning-gym task is prompted, extracted and scored."""

    name: str
    family: str
    answer_type: str | None  # our extraction type; None: free-form span (propositional_logic)
    to_rg: Callable[[Any], str] = str  # parsed value -> the string reasoning-gym's score_answer expects
    label_space: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # create_dataset keyword overrides


TASKS: dict[str, RGTask] = {
    "gsm_symbolic": RGTask("gsm_symbolic", "IsoArith", "fraction", _number_text),
    "basic_arithmetic": RGTask("basic_arithmetic", "IsoArith", "fraction", _number_text),
    "syllogism": RGTask("syllogism", "IsoDeduce", "bool", lambda v: "Yes" if v else "No"),
    "propositional_logic": RGTask("propositional_logic", "IsoDeduce", None),
    "family_relationships": RGTask("family_relationships", "IsoRelate", "label", str, FAMILY_RELATIONS),
}


def get_task(spec: str) -> RGTask:
    """The task for ``reasoning_gym:NAME`` (or a bare ``NAME``); the error lists what is supported."""
    prefix, sep, name = spec.partition(":")
    if not sep:
        prefix, name = PREFIX, spec
    if prefix != PREFIX or name not in TASKS:
        allowed = ", ".join(f"{PREFIX}:{t}" for t in TASKS)
        raise ValueError(f"task: unknown external task {spec!r}; supported: {allowed}")
    return TASKS[name]


def import_reasoning_gym() -> Any:
    """The ``reasoning_gym`` module, or a one-line install hint."""
    try:
        import reasoning_gym
    except ImportError:
        raise MissingPackageError(
            "reasoning-gym tasks need the 'reasoning-gym' package; install it with: pip install reasoning-gym==0.1.25"
        ) from None
    return reasoning_gym


def build_items(task: RGTask, n: int, seed: int) -> tuple[Any, list[dict]]:
    """``(dataset, entries)``: ``n`` reasoning-gym items of ``task`` generated from ``seed``."""
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    rg = import_reasoning_gym()
    dataset = rg.create_dataset(task.name, size=n, seed=seed, **dict(task.options))
    return dataset, [dataset[i] for i in range(n)]


def to_record(task: RGTask, entry: Mapping, index: int, seed: int) -> dict[str, Any]:
    """A record our prompt formats and generator take (single domain, not an isomer set)."""
    rid = f"rg-{task.name}-s{seed}-{index:05d}"
    record: dict[str, Any] = {
        "id": rid,
        "instance_id": rid,
        "domain": PREFIX,
        "family": task.family,
        "question": entry["question"],
        "answer": entry["answer"],
        "answer_type": task.answer_type,
        "source": {"dataset": f"{PREFIX}:{task.name}", "seed": seed, "index": index},
    }
    if task.label_space:
        record["label_space"] = list(task.label_space)
    return record


_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b[ \t]*:?", re.IGNORECASE)
_ASCII_LOGIC = (
    (r"<->", "↔"),
    (r"<=>", "↔"),
    (r"->", "→"),
    (r"=>", "→"),
    (r"&&?", "∧"),
    (r"\|\|?", "∨"),
    (r"[~!]", "¬"),
)


def _formula(completion: str, mode: str) -> tuple[str | None, str | None]:
    """``(span, method)`` of a free-form answer: the last ``The answer is …`` line (flexible: else the last line)."""
    spans = [completion[m.end() :].split("\n", 1)[0].strip() for m in _ANSWER_IS.finditer(completion)]
    spans = [s for s in spans if s]
    method = "the_answer_is" if spans else None
    if not spans and mode == "flexible":
        spans = [line.strip() for line in completion.splitlines() if line.strip()]
        method = "fallback_line" if spans else None
    if not spans:
        return None, None
    span = spans[-1].strip("`$* ").rstrip(".").strip()
    if mode == "flexible":
        # The question fixes the notation; strict mode holds the student to it, flexible accepts ASCII spellings.
        for pattern, symbol in _ASCII_LOGIC:
            span = re.sub(pattern, symbol, span)
    return (span or None), method


def extract(task: RGTask, completion: str, mode: str = "strict") -> tuple[str | None, str | None, str | None]:
    """``(span, rg_answer, method)``: what was found, the string handed to ``score_answer`` (None: failure)."""
    from iga.isomers.answers import extract_answer

    if mode not in MODES:
        raise ValueError(f"mode: unknown {mode!r}; allowed: {', '.join(MODES)}")
    if task.answer_type is None:
        span, method = _formula(completion, mode)
        return span, span, method
    found = extract_answer(completion, task.answer_type, mode=mode, label_space=task.label_space or None)
    rg_answer = None if found.value is None else task.to_rg(found.value)
    return found.text, rg_answer, found.method


def score_completions(
    task: RGTask, dataset: Any, entries: Sequence[Mapping], completions: Sequence[str]
) -> dict[str, Any]:
    """Score ``completions`` of ``entries`` with reasoning-gym in both extraction modes.

    Returns ``{"n", "strict": {...}, "flexible": {...}, "items": [...]}`` where each mode has ``accuracy`` (share
    of items with full credit), ``mean_score``, ``extraction_failures`` and ``extraction_failure_rate``.
    """
    if len(entries) != len(completions):
        raise ValueError(f"got {len(completions)} completions for {len(entries)} items")
    items: list[dict[str, Any]] = []
    totals = {m: {"correct": 0, "score": 0.0, "failures": 0} for m in MODES}
    for index, (entry, completion) in enumerate(zip(entries, completions, strict=True)):
        item: dict[str, Any] = {"index": index, "gold": entry["answer"], "completion": completion}
        for mode in MODES:
            span, rg_answer, method = extract(task, completion, mode)
            score = float(dataset.score_answer(rg_answer, entry)) if rg_answer is not None else 0.0
            item[mode] = {"span": span, "answer": rg_answer, "method": method, "score": score}
            totals[mode]["correct"] += score >= 1.0
            totals[mode]["score"] += score
            totals[mode]["failures"] += rg_answer is None
        items.append(item)
    n = len(entries)
    summary: dict[str, Any] = {"n": n}
    for mode, t in totals.items():
        summary[mode] = {
            "accuracy": t["correct"] / n if n else None,
            "mean_score": t["score"] / n if n else None,
            "extraction_failures": t["failures"],
            "extraction_failure_rate": t["failures"] / n if n else None,
        }
    summary["items"] = items
    return summary


def evaluate_task(
    model: Any,
    tokenizer: Any,
    spec: str,
    *,
    n: int = 50,
    seed: int = 0,
    fmt: Any = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate answers for ``n`` items of task ``spec`` and score them (see :func:`score_completions`).

    ``fmt`` is a prompt format (:class:`~iga.models.prompting.PromptFormat` by default, or a
    :class:`~iga.models.chat.ChatPromptFormat` for instruct models). The result also records the task, seed,
    reasoning-gym version and generation time.
    """
    from importlib.metadata import version

    from iga.evaluation.generation import generate_completions
    from iga.models.prompting import PromptFormat

    task = get_task(spec)
    dataset, entries = build_items(task, n, seed)
    records = [to_record(task, e, i, seed) for i, e in enumerate(entries)]
    t0 = time.perf_counter()
    completions = generate_completions(
        model,
        tokenizer,
        records,
        fmt=fmt or PromptFormat(),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    result = score_completions(task, dataset, entries, completions)
    return {
        "task": f"{PREFIX}:{task.name}",
        "family": task.family,
        "seed": seed,
        "reasoning_gym_version": version("reasoning-gym"),
        "generation_seconds": round(seconds, 2),
        **result,
    }
