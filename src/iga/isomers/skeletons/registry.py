"""The skeleton registry: one line per skeleton, in catalogue order (which is also the output order).

A user skeleton is a :class:`~iga.isomers.skeletons.base.Skeleton` subclass passed to :func:`register_skeleton`;
domain files may then carry a section for its id.
"""

from __future__ import annotations

from iga.isomers.errors import ConfigError
from iga.isomers.skeletons.base import Skeleton
from iga.isomers.skeletons.m01_arith_walk import ArithWalk
from iga.isomers.skeletons.m02_mp_forward import MPForward
from iga.isomers.skeletons.m03_order import Order
from iga.isomers.skeletons.m04_state import State
from iga.isomers.skeletons.s01_arith_chain import ArithChain
from iga.isomers.skeletons.s02_linear_system import LinearSystem
from iga.isomers.skeletons.s03_proportion import Proportion
from iga.isomers.skeletons.s04_incl_excl import InclExcl
from iga.isomers.skeletons.s05_cond_prob import CondProb
from iga.isomers.skeletons.s06_mp_chain import MPChain
from iga.isomers.skeletons.s07_prop_pattern import PropPattern
from iga.isomers.skeletons.s08_rule_exceptions import RuleExceptions
from iga.isomers.skeletons.s09_transitive_order import TransitiveOrder
from iga.isomers.skeletons.s10_relation_compose import RelationCompose
from iga.isomers.skeletons.s11_state_tracking import StateTracking

_REGISTRY: dict[str, Skeleton] = {}


def register_skeleton(skeleton: Skeleton) -> Skeleton:
    """Add a skeleton (its ``id`` must be new and look like ``S13_name``)."""
    if skeleton.id in _REGISTRY:
        raise ConfigError(f"skeleton {skeleton.id!r} is already registered")
    _REGISTRY[skeleton.id] = skeleton
    return skeleton


for _cls in (
    ArithChain,
    LinearSystem,
    Proportion,
    InclExcl,
    CondProb,
    MPChain,
    PropPattern,
    RuleExceptions,
    TransitiveOrder,
    RelationCompose,
    StateTracking,
    ArithWalk,
    MPForward,
    Order,
    State,
):
    register_skeleton(_cls())


SUITES = ("standard", "micro")


def list_skeletons(suite: str | None = "standard") -> list[str]:
    """Registered skeleton ids of ``suite`` (``None``: every suite) in catalogue order.

    >>> list_skeletons()[:2]
    ['S01_arith_chain', 'S02_linear_system']
    >>> list_skeletons("micro")
    ['M01_arith_walk', 'M02_mp_forward', 'M03_order', 'M04_state']
    """
    if suite is not None and suite not in SUITES:
        raise ConfigError(f"unknown skeleton suite {suite!r} (choose from {', '.join(SUITES)})")
    return [sk.id for sk in _REGISTRY.values() if suite is None or sk.suite == suite]


def get_skeleton(name: str) -> Skeleton:
    """Look a skeleton up by id (``S06_mp_chain``) or code (``S06``, case-insensitive)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for sk in _REGISTRY.values():
        if sk.code.lower() == name.lower():
            return sk
    raise ConfigError(f"unknown skeleton {name!r} (known: {', '.join(_REGISTRY)})")


def all_skeletons() -> list[Skeleton]:
    return list(_REGISTRY.values())
