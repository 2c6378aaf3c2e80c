"""Optional dependencies: import them where they are used, with one line that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError, ValueError):
    """An optional package is missing (a ``ValueError`` too, so the CLI shows it as one line)."""


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` saying ``purpose`` needs ``pip install 'iga[extra]'``.

    >>> require("json", extra="experiments", purpose="reading JSON").__name__
    'json'
    >>> try:
    ...     require("no_such_module_here", extra="experiments", purpose="figures")
    ... except MissingExtraError as e:
    ...     print(e)
    figures need the 'no_such_module_here' package: pip install 'iga[experiments]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = (e.name or module).split(".")[0]
        raise MissingExtraError(
            f"{purpose} need the {package!r} package: pip install 'iga[{extra}]'"
        ) from None
