"""Hyper-parameter registry in DomainBed's style: per algorithm, the searched hyper-parameters and their random
draws for random search; defaults are the fields' defaults of each algorithm's ``hparams_cls`` (one source of truth).

A draw is seeded by a SHA-256 hash of ``(algorithm, benchmark, hparams_seed, trial_seed, hyper-parameter name)``,
so it is identical on every machine and Python version, and each hyper-parameter's draw is independent of which
others exist (DomainBed seeds per name too). Training hyper-parameters (lr, batch size, ...) are not here.

Example:
    >>> default_hparams("vrex")["penalty"]
    10.0
    >>> h = random_hparams("vrex", benchmark="isoarith", hparams_seed=1, trial_seed=0)
    >>> 0.1 <= h["penalty"] <= 1e5 and h == random_hparams("vrex", benchmark="isoarith", hparams_seed=1, trial_seed=0)
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

from iga.algorithms.hparam_checks import is_int


@dataclass(frozen=True)
class SearchRange:
    """How one hyper-parameter is drawn in a random search: ``sample(rng)`` and its description."""

    sample: Callable[[random.Random], Any]
    description: str


def log_uniform(lo: float, hi: float) -> SearchRange:
    """``10^U(lo, hi)``."""
    return SearchRange(lambda r: 10 ** r.uniform(lo, hi), f"10^U({lo:g}, {hi:g})")


def log_uniform_values(lo: float, hi: float) -> SearchRange:
    """Log-uniform between the values ``lo`` and ``hi`` (> 0)."""
    a, b = math.log10(lo), math.log10(hi)
    return SearchRange(lambda r: 10 ** r.uniform(a, b), f"log-U({lo:g}, {hi:g})")


def int_log_uniform(lo: float, hi: float) -> SearchRange:
    """``int(10^U(lo, hi))``."""
    return SearchRange(lambda r: int(10 ** r.uniform(lo, hi)), f"int(10^U({lo:g}, {hi:g}))")


def uniform(lo: float, hi: float) -> SearchRange:
    """``U(lo, hi)``."""
    return SearchRange(lambda r: r.uniform(lo, hi), f"U({lo:g}, {hi:g})")


def int_uniform(lo: float, hi: float) -> SearchRange:
    """``int(U(lo, hi))``."""
    return SearchRange(lambda r: int(r.uniform(lo, hi)), f"int(U({lo:g}, {hi:g}))")


def choice(*values: Any) -> SearchRange:
    """One of ``values``, uniformly."""
    return SearchRange(lambda r: r.choice(values), f"choice{values}")


def fixed(value: Any) -> SearchRange:
    """Not searched: always ``value`` (listed so that results record it)."""
    return SearchRange(lambda r: value, f"fixed {value!r}")


#: Fields of some ``hparams_cls`` that belong to the trainer's configuration (it passes its clip value there).
TRAINING_FIELDS = ("max_grad_norm",)

# One block per algorithm (DomainBed: "each block corresponds to exactly one algorithm"). Ranges are DomainBed's
# and LibMTL's where they exist; the ones marked "ours" have no public reference.
SEARCH_SPACES: dict[str, dict[str, SearchRange]] = {
    "erm": {},
    "iga": {
        "tau": log_uniform_values(1, 30),  # ours: a log scale around the default τ = 10
        "variance_norm": fixed("relative"),
        "svd_rank": fixed("lora"),
    },
    "irm": {"penalty": log_uniform(-1, 5), "anneal_steps": int_log_uniform(0, 4)},
    "vrex": {"penalty": log_uniform(-1, 5), "anneal_steps": int_log_uniform(0, 4)},
    "groupdro": {"eta": log_uniform(-3, -1)},
    "fish": {"meta_lr": choice(0.05, 0.1, 0.5)},
    "fishr": {"penalty": log_uniform(1, 4), "anneal_steps": int_uniform(0, 5000), "ema": uniform(0.9, 0.99)},
    "andmask": {"tau": uniform(0.5, 1.0)},
    "sandmask": {"tau": uniform(0.0, 1.0), "k": log_uniform(-3, 5)},
    "pcgrad": {},
    "cagrad": {"calpha": uniform(0.1, 0.9)},  # ours: LibMTL documents no search range
    "iga_koyama": {"penalty": log_uniform(1, 5)},
}


#: Training hyper-parameters a sweep may search too (``SweepSpec.search_training``), DomainBed's ``lr`` for every
#: algorithm: a draw gives the same value to every algorithm of the same ``(hparams_seed, trial_seed)``, so ERM's
#: draws differ from its default only here. Ours: a decade around the LoRA default lr 3·10⁻³.
TRAINING_SEARCH_SPACES: dict[str, SearchRange] = {
    "lr": log_uniform_values(1e-3, 1e-2),
}


def check_training_search(names: list[str] | tuple[str, ...]) -> None:
    """Refuse a training hyper-parameter that :data:`TRAINING_SEARCH_SPACES` has no range for."""
    unknown = sorted(set(names) - set(TRAINING_SEARCH_SPACES))
    if unknown:
        raise ValueError(
            f"search_training: unknown {unknown[0]!r}; allowed: {', '.join(sorted(TRAINING_SEARCH_SPACES))}"
        )


def training_hparams(
    names: list[str] | tuple[str, ...], *, benchmark: str, hparams_seed: int, trial_seed: int
) -> dict[str, Any]:
    """Seeded draws of the training hyper-parameters ``names`` (``{}`` for ``hparams_seed == 0``: the config's).

    Example:
        >>> training_hparams(["lr"], benchmark="b", hparams_seed=0, trial_seed=0)
        {}
        >>> lr = training_hparams(["lr"], benchmark="b", hparams_seed=1, trial_seed=0)["lr"]
        >>> 1e-3 <= lr <= 1e-2
        True
    """
    check_training_search(names)
    if hparams_seed == 0:
        return {}
    return {
        name: TRAINING_SEARCH_SPACES[name].sample(_rng("training", benchmark, hparams_seed, trial_seed, name))
        for name in names
    }


def _check_name(algorithm: str) -> type:
    from iga.algorithms.registry import get_algorithm

    cls = get_algorithm(algorithm)
    names = {f.name for f in fields(cls.hparams_cls)}
    unknown = sorted(set(SEARCH_SPACES.get(algorithm, {})) - names)
    if unknown:
        raise ValueError(
            f"search space of {algorithm!r} names {unknown}, which are not fields of its hyper-parameters"
        )
    return cls


def search_space(algorithm: str) -> dict[str, SearchRange]:
    """The searched hyper-parameters of ``algorithm`` (empty when none are searched or none are registered)."""
    _check_name(algorithm)
    return dict(SEARCH_SPACES.get(algorithm, {}))


def default_hparams(algorithm: str) -> dict[str, Any]:
    """Every method hyper-parameter of ``algorithm`` with its default (the dataclass defaults of ``hparams_cls``),
    except the training ones in :data:`TRAINING_FIELDS`, which the trainer sets."""
    cls = _check_name(algorithm)
    out = {}
    for f in fields(cls.hparams_cls):
        if f.name in TRAINING_FIELDS:
            continue
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _rng(algorithm: str, benchmark: str, hparams_seed: int, trial_seed: int, name: str) -> random.Random:
    key = json.dumps([algorithm, benchmark, hparams_seed, trial_seed, name]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def random_hparams(algorithm: str, *, benchmark: str, hparams_seed: int, trial_seed: int) -> dict[str, Any]:
    """The defaults with every searched hyper-parameter replaced by its seeded random draw."""
    if not isinstance(benchmark, str) or not benchmark:
        raise ValueError(f"benchmark must be a non-empty string, got {benchmark!r}")
    for label, seed in (("hparams_seed", hparams_seed), ("trial_seed", trial_seed)):
        if not is_int(seed) or seed < 0:
            raise ValueError(f"{label} must be an int >= 0, got {seed!r}")
    out = default_hparams(algorithm)
    for name, space in search_space(algorithm).items():
        out[name] = space.sample(_rng(algorithm, benchmark, hparams_seed, trial_seed, name))
    return out


def sweep_hparams(algorithm: str, *, benchmark: str, hparams_seed: int, trial_seed: int) -> dict[str, Any]:
    """DomainBed's sweep convention: ``hparams_seed == 0`` runs the defaults, any other seed a random draw."""
    if hparams_seed == 0:
        return default_hparams(algorithm)
    return random_hparams(algorithm, benchmark=benchmark, hparams_seed=hparams_seed, trial_seed=trial_seed)
