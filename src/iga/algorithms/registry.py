"""Name → :class:`~iga.algorithms.base.Algorithm` registry.

A new method is one module that decorates its class with ``@register_algorithm("name")`` plus one line in
``_BUILTIN_MODULES`` (imported on the first lookup, so the registry is complete without import-order tricks).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TypeVar

from iga.algorithms.base import Algorithm

_BUILTIN_MODULES = (
    "iga.algorithms.erm",
    "iga.algorithms.iga",
    "iga.algorithms.irm",
    "iga.algorithms.vrex",
    "iga.algorithms.groupdro",
    "iga.algorithms.fish",
    "iga.algorithms.fishr",
    "iga.algorithms.andmask",
    "iga.algorithms.sandmask",
    "iga.algorithms.pcgrad",
    "iga.algorithms.cagrad",
    "iga.algorithms.iga_koyama",
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


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


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
    """Registered names, in registration order (built-ins first)."""
    _load_builtins()
    return list(_REGISTRY)
