"""Shortcut cues: a surface feature that predicts the answer in training domains, and misleads at test time.

Like the colour in Colored-MNIST, a cue is a domain-specific sentence put in front of the question, e.g. in law
"The clerk's margin note reads 42." Its value equals the true answer with the domain's *reliability* and is a
plausible wrong answer of the same type otherwise. A student that reads the cue instead of reasoning does well
in training and fails when the cue is unreliable, which is exactly the surface shortcut IGA is meant to remove:
the reliability differs across training domains, so the gradient of "trust the cue" disagrees across domains.

* ``train`` and ``val``: training-domain renderings carry the cue with ``reliability[domain]``
  (default math .95, medicine .85, law .70, science .55); held-out and stress domains never appear there.
* Evaluation splits (``id_test``, ``ood_surface``, ``ood_depth``, ``stress``): ``eval="none"`` (default) - no
  cue; ``eval="wrong"`` - every rendering whose domain defines a ``shortcut_cue`` carries one that is always
  wrong (reliability 0).
* The record field ``shortcut`` is ``{"text", "value", "correct"}`` or ``null``; ``enabled=False`` (CLI
  ``--no-shortcuts``) turns cues off everywhere.
* ``share`` (default 1): the fraction of ``train``/``val`` renderings that carry a cue at all. At about one half,
  cue-free accuracy measures reasoning rather than a change of format (the micro regime's default).
* ``noise`` (default 0): **teacher noise**, Colored-MNIST's construction. Each ``train`` rendering of a training
  domain gets, with probability ``noise``, a wrong final answer (the CoT steps are kept; the record's
  ``teacher_answer`` names the wrong answer, ``answer`` stays the true one), and its cue is keyed to the answer the
  teacher wrote. So the cue predicts the training target with ``reliability[domain]`` and the logic with
  ``1 - noise``: in domains where ``reliability > 1 - noise`` the cue is the better predictor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

from iga.isomers.domains import Domain
from iga.isomers.errors import ConfigError
from iga.isomers.rng import HashRng
from iga.isomers.text import as_sentence, fill

DEFAULT_RELIABILITY: Mapping[str, float] = MappingProxyType(
    {"math": 0.95, "medicine": 0.85, "law": 0.7, "science": 0.55}
)
EVAL_MODES = ("none", "wrong")


@dataclass(frozen=True)
class ShortcutConfig:
    """``enabled``; per training domain ``reliability``; ``eval`` mode for evaluation splits."""

    enabled: bool = True
    reliability: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RELIABILITY))
    eval: str = "none"
    share: float = 1.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.eval not in EVAL_MODES:
            raise ConfigError(f"shortcut.eval: {self.eval!r} is not one of {', '.join(EVAL_MODES)}")
        for name in ("share", "noise"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"shortcut.{name}: expected a number in [0, 1], got {p!r}")
        for name, p in self.reliability.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"shortcut.reliability.{name}: expected a probability in [0, 1], got {p!r}")

    def to_dict(self) -> dict:
        out = {"enabled": self.enabled, "reliability": dict(self.reliability), "eval": self.eval}
        # share/noise appear only when set, so manifests (and job ids) of suites built before them are unchanged
        out |= {
            k: getattr(self, k)
            for k, default in (("share", 1.0), ("noise", 0.0))
            if getattr(self, k) != default
        }
        return out

    def check_domains(self, train_domains: Sequence[Domain]) -> None:
        """Every training domain needs a reliability and a cue template when cues are on."""
        if not self.enabled:
            return
        for d in train_domains:
            if d.name not in self.reliability:
                raise ConfigError(
                    f"shortcut.reliability: no entry for training domain {d.name!r} "
                    "(add one, or turn shortcuts off with --no-shortcuts)"
                )
            if d.shortcut_cue is None:
                raise ConfigError(
                    f"{', '.join(d.files)}: shortcut_cue: training domain {d.name!r} has no cue "
                    "template (add one, or turn shortcuts off with --no-shortcuts)"
                )


def make_cue(
    config: ShortcutConfig,
    domain: Domain,
    split: str,
    answer: str,
    answer_type: str,
    label_space: Sequence[str],
    rng: HashRng,
) -> dict | None:
    """The record's ``shortcut`` field for one rendering (``None`` when it carries no cue).

    ``answer`` is the training target: the true answer, or the noisy teacher's (:func:`teacher_answer`).
    """
    if not config.enabled or domain.shortcut_cue is None:
        return None
    if split in ("train", "val"):
        if domain.role != "train":
            return None
        # drawn from its own stream, and only when share < 1, so suites built before `share` keep their cues
        if config.share < 1.0 and not rng.child("share").bernoulli(config.share):
            return None
        correct = rng.bernoulli(config.reliability[domain.name])
    elif config.eval == "wrong":
        correct = False
    else:
        return None
    value = answer if correct else wrong_answer(answer, answer_type, label_space, rng)
    return {
        "text": as_sentence(fill(domain.shortcut_cue, {"value": value})),
        "value": value,
        "correct": correct,
    }


def teacher_answer(
    config: ShortcutConfig,
    domain: Domain,
    split: str,
    answer: str,
    answer_type: str,
    label_space: Sequence[str],
    rng: HashRng,
) -> str | None:
    """The wrong final answer a noisy teacher writes for this rendering, or ``None`` (no noise here)."""
    if config.noise <= 0.0 or split != "train" or domain.role != "train":
        return None
    if not rng.bernoulli(config.noise):
        return None
    return wrong_answer(answer, answer_type, label_space, rng.child("wrong"))


def wrong_answer(answer: str, answer_type: str, label_space: Sequence[str], rng: HashRng) -> str:
    """A plausible answer of the same type that differs from ``answer``.

    >>> wrong_answer("yes", "bool", ["yes", "no"], HashRng(0))
    'no'
    """
    if answer_type == "int":
        value = int(answer)
        return str(rng.choice([v for v in (value - 2, value - 1, value + 1, value + 2) if v >= 0]))
    if answer_type == "fraction":
        value = Fraction(answer)
        p, q = value.numerator, value.denominator
        options = {Fraction(p + 1, q), Fraction(p, q + 1), Fraction(p + 1, q + 1)}
        if p > 1:
            options.add(Fraction(p - 1, q))
        options = sorted(o for o in options if o != value and 0 < o <= 1) or [value / 2]
        pick = rng.choice(options)
        return str(pick.numerator) if pick.denominator == 1 else f"{pick.numerator}/{pick.denominator}"
    others = [v for v in label_space if v != answer]
    if not others:
        raise ConfigError(f"cannot make a wrong {answer_type} answer: label space {list(label_space)!r}")
    return rng.choice(others)


def strip_cue(record: Mapping) -> dict:
    """A copy of ``record`` without its shortcut cue: the question as rendered, ``shortcut`` set to ``None``.

    The cue is prefixed to the rendered question (``f"{cue} {question}"``) and drawn from its own random stream,
    so stripping it gives exactly the record a suite built with cues off would hold. This is how the cue-free
    validation split (``val_nocue``) is made at evaluation time: model selection on ``val`` rewards reading the
    training domains' cues, which ``id_test`` and the held-out splits never show.

    >>> rec = {"id": "x", "question": "Hint: 7. What is 3 + 4?", "shortcut": {"text": "Hint: 7.", "value": "7"}}
    >>> strip_cue(rec)["question"], strip_cue(rec)["shortcut"]
    ('What is 3 + 4?', None)
    """
    out = dict(record)
    cue = record.get("shortcut")
    if not cue:
        return out
    prefix = f"{cue['text']} "
    question = record.get("question", "")
    if not question.startswith(prefix):
        raise ValueError(
            f"record {record.get('id', '?')!r}: field 'question' does not start with its shortcut cue "
            f"{cue['text']!r}; cannot strip it"
        )
    out["question"] = question[len(prefix) :]
    out["shortcut"] = None
    return out


def with_wrong_cue(record: Mapping, domains: Mapping[str, Domain] | None = None) -> dict | None:
    """A copy of ``record`` whose question carries a **wrong** cue in its domain's wording (any earlier cue
    replaced); ``None`` if the domain has no cue template. The wrong value is drawn from a stream keyed by the
    record id, so the derived split is the same in every run. This is the ``val_wrongcue`` evaluation split: how
    often a model answers with a wrong cue's value, on every training-domain validation problem.

    >>> rec = {"id": "M01-val-00000-math", "domain": "math", "question": "x is 3. Add 4 to x. x = ?",
    ...        "answer": "7", "answer_type": "int", "label_space": [], "shortcut": None}
    >>> wrong = with_wrong_cue(rec)
    >>> wrong["question"].startswith("Answer key hint: ") and wrong["shortcut"]["value"] != "7"
    True
    """
    domain = (domains or _shipped_domains()).get(record.get("domain", ""))
    if domain is None or domain.shortcut_cue is None:
        return None
    base = strip_cue(record)
    rng = HashRng("wrong-cue", record["id"])
    value = wrong_answer(record["answer"], record["answer_type"], record.get("label_space") or [], rng)
    text = as_sentence(fill(domain.shortcut_cue, {"value": value}))
    return {
        **base,
        "question": f"{text} {base['question']}",
        "shortcut": {"text": text, "value": value, "correct": False},
    }


_DOMAINS: dict = {}


def _shipped_domains() -> Mapping[str, Domain]:
    from iga.isomers.domains import load_domains

    if not _DOMAINS:
        _DOMAINS.update(load_domains())
    return _DOMAINS
