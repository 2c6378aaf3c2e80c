"""What a skeleton is: a sampler, a solver that writes the trace, an independent checker, and a template spec.

A skeleton never sees a domain. It samples domain-free ``params`` under difficulty :class:`Knobs`, solves them
into typed :class:`~iga.isomers.instance.Step` s (the symbolic teacher), and describes the question abstractly.
:meth:`Skeleton.instance` re-derives the answer with :meth:`Skeleton.check` - brute force or enumeration, written
without the solver's code path - and raises :class:`~iga.isomers.errors.GeneratorError` on disagreement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar

from iga.isomers.errors import ConfigError, GeneratorError
from iga.isomers.instance import LogicalInstance, Sentence, SlotValue, Step
from iga.isomers.rng import HashRng

PREMISE_ORDERS = ("forward", "backward", "random")
REGIMES = ("train", "ood_depth")
_RANGE_KNOBS = ("depth", "width", "distractors", "num_range")


@dataclass(frozen=True)
class Knobs:
    """Difficulty ranges (inclusive) for one regime.

    ``depth``: steps/hops/chain length; ``width``: branching or set size; ``distractors``: irrelevant premises;
    ``num_range``: magnitude of sampled numbers; ``premise_order``: orders to draw from; ``negation_rate``:
    probability that a rule is negative (where the skeleton has negation).
    """

    depth: tuple[int, int]
    width: tuple[int, int] = (0, 0)
    distractors: tuple[int, int] = (0, 0)
    num_range: tuple[int, int] = (1, 20)
    premise_order: tuple[str, ...] = ("forward",)
    negation_rate: float = 0.0

    def override(self, changes: Mapping[str, Any], *, where: str, bounds: Knobs) -> Knobs:
        """A copy with ``changes`` applied, each checked against ``bounds`` (the skeleton's hard limits)."""
        allowed = [f.name for f in fields(self)]
        new: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in allowed:
                raise ConfigError(f"{where}.{key}: unknown knob (allowed: {', '.join(allowed)})")
            if key in _RANGE_KNOBS:
                lo_b, hi_b = getattr(bounds, key)
                if (
                    not isinstance(value, (list, tuple))
                    or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                    or not lo_b <= value[0] <= value[1] <= hi_b
                ):
                    raise ConfigError(
                        f"{where}.{key}: expected [lo, hi] with {lo_b} <= lo <= hi <= {hi_b}, got {value!r}"
                    )
                new[key] = (int(value[0]), int(value[1]))
            elif key == "premise_order":
                orders = (value,) if isinstance(value, str) else tuple(value)
                bad = [o for o in orders if o not in bounds.premise_order]
                if not orders or bad:
                    raise ConfigError(
                        f"{where}.premise_order: {value!r} not allowed (choose from {', '.join(bounds.premise_order)})"
                    )
                new[key] = orders
            else:
                if not isinstance(value, (int, float)) or not 0.0 <= value <= bounds.negation_rate:
                    raise ConfigError(
                        f"{where}.negation_rate: expected a number in [0, {bounds.negation_rate}]"
                    )
                new[key] = float(value)
        return replace(self, **new)


@dataclass(frozen=True)
class TemplateSpec:
    """The templates and word pools a domain section must provide for a skeleton.

    Each mapping goes from a template key to the slots its templates may use. ``pools`` are word lists (looked
    up in the section's ``words`` first, then the domain ``lexicon``) with their minimum size; ``tables`` are
    word tables with their required keys.
    """

    questions: Mapping[str, frozenset[str]]
    premises: Mapping[str, frozenset[str]]
    steps: Mapping[str, frozenset[str]]
    pools: Mapping[str, int] = field(default_factory=dict)
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    narration: Mapping[str, frozenset[str]] = field(default_factory=dict)
    default_steps: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Solution:
    """What the solver returns: premises in presentation order, the query, the trace and the answer."""

    premises: tuple[Sentence, ...]
    query: Sentence
    steps: tuple[Step, ...]
    answer: str
    answer_surface: SlotValue | None = None
    label_space: tuple[SlotValue, ...] = ()


def slots(*names: str) -> frozenset[str]:
    return frozenset(names)


class Skeleton(ABC):
    """Base class: subclasses set the class attributes and implement ``sample``, ``solve`` and ``check``."""

    id: ClassVar[str]
    family: ClassVar[str]
    answer_type: ClassVar[str]
    title: ClassVar[str]
    spec: ClassVar[TemplateSpec]
    regimes: ClassVar[Mapping[str, Knobs]]
    bounds: ClassVar[Knobs]
    #: ``standard`` (S01-S11, the default catalogue) or ``micro`` (M01-M04, the learnable regime).
    suite: ClassVar[str] = "standard"

    @property
    def code(self) -> str:
        return self.id.split("_", 1)[0]

    @abstractmethod
    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        """Draw ``(params, difficulty)``; ``params`` must be JSON-serialisable and domain-free."""

    @abstractmethod
    def solve(self, params: dict) -> Solution:
        """The symbolic teacher: premises, query, typed steps and the canonical answer."""

    @abstractmethod
    def check(self, params: dict) -> str:
        """Re-derive the canonical answer independently of :meth:`solve` (enumeration / brute force)."""

    def narrative(self, params: dict) -> tuple[Sentence, ...]:
        """Plain text stating the premises and their consequences - no question, no CoT (micro skeletons)."""
        raise NotImplementedError(f"{self.id} has no narrative (only the micro skeletons do)")

    def instance(self, rng: HashRng, knobs: Knobs, regime: str = "train") -> LogicalInstance:
        """Sample, solve and cross-check one instance (``regime`` is recorded in its difficulty)."""
        params, difficulty = self.sample(rng, knobs)
        return self.instance_from(params, {"regime": regime, **difficulty})

    def instance_from(self, params: dict, difficulty: dict) -> LogicalInstance:
        """Solve and cross-check given ``params`` (sampled here, or imported from elsewhere)."""
        sol = self.solve(params)
        checked = self.check(params)
        if checked != sol.answer:
            raise GeneratorError(
                f"{self.id}: solver answer {sol.answer!r} != checker answer {checked!r} for params {params!r}"
            )
        return LogicalInstance(
            skeleton=self.id,
            family=self.family,
            params=params,
            difficulty=difficulty,
            premises=sol.premises,
            query=sol.query,
            steps=sol.steps,
            answer=sol.answer,
            answer_type=self.answer_type,
            answer_surface=sol.answer if sol.answer_surface is None else sol.answer_surface,
            label_space=sol.label_space,
        )


def make_regimes(train: Knobs, ood_depth: Knobs) -> Mapping[str, Knobs]:
    """The (read-only) knobs of the two regimes: ``train`` (every split but one) and ``ood_depth``."""
    return MappingProxyType({"train": train, "ood_depth": ood_depth})


def difficulty_record(
    knobs: Knobs, *, depth: int, width: int = 0, distractors: int = 0, premise_order: str = "forward"
) -> dict:
    """The record's ``difficulty`` object: sampled values, plus the configured number range and negation rate."""
    return {
        "depth": depth,
        "width": width,
        "distractors": distractors,
        "num_range": list(knobs.num_range),
        "premise_order": premise_order,
        "negation_rate": knobs.negation_rate,
    }


def order_indices(rng: HashRng, n: int, order: str) -> list[int]:
    """Presentation order of ``n`` premises."""
    if order == "forward":
        return list(range(n))
    if order == "backward":
        return list(range(n - 1, -1, -1))
    return rng.shuffle(range(n))
