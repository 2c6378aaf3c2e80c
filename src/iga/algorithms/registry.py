"""Name → :class:`~iga.algorithms.base.Algorithm` registry.

A new method is one module of this package whose class is decorated with ``@register_algorithm("name")``: the
first lookup imports every module of the package, so nothing else needs an edit (its random-search ranges, if
any, go in :data:`iga.algorithms.hparams.SEARCH_SPACES`; without an entry its defaults are not searched).

:func:`list_algorithms` lists the built-in methods in :data:`_LISTING_ORDER`, then the others in registration
order, whatever was imported first: CLI listings and test ids must not change when a method is added.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from typing import TypeVar

from iga.algorithms.base import Algorithm

_PACKAGE = "iga.algorithms"
#: The built-in methods in their listing order (each registered by the module of the same name).
_LISTING_ORDER = (
    "erm",
    "iga",
    "irm",
    "vrex",
    "groupdro",
    "fish",
    "fishr",
    "andmask",
    "sandmask",
    "pcgrad",
    "cagrad",
    "iga_koyama",
)
_REGISTRY: dict[str, type[Algorithm]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

A = TypeVar("A", bound=type[Algorithm])


def register_algorithm(name: str) -> Callable[[A], A]:
    """Class decorator registering an :class:`Algorithm` subclass under ``name`` (lower-case identifier)."""
    if not _NAME.match(name):
        raise ValueError(f"algorithm name must be a lower-case identifier like 'and_mask', got {name!r}")

    def decorate(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise TypeError(f"@register_algorithm({name!r}) decorates Algorithm subclasses, got {cls!r}")
        existing = _REGISTRY.get(name)
        # Same module + qualname is a re-import (importlib.reload), not a clash.
        if existing is not None and (existing.__module__, existing.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(
                f"algorithm {name!r} is already registered by {existing.__module__}.{existing.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


_loaded = False


def _load_builtins() -> None:
    """Import every module of the package once (each registers its own method), in the listing order."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(_PACKAGE)
    found = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
    for name in [*_LISTING_ORDER, *(m for m in found if m not in _LISTING_ORDER)]:
        importlib.import_module(f"{_PACKAGE}.{name}")
    _loaded = True


def get_algorithm(name: str) -> type[Algorithm]:
    """The registered class for ``name``.

    Example:
        >>> get_algorithm("iga").capture_space
        'full'
    """
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; registered: {list_algorithms()}") from None


def list_algorithms() -> list[str]:
    """Registered names: the built-ins in :data:`_LISTING_ORDER`, then the others in registration order."""
    _load_builtins()
    rank = {name: i for i, name in enumerate(_LISTING_ORDER)}
    return sorted(_REGISTRY, key=lambda name: rank.get(name, len(rank)))
