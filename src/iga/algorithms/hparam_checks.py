"""Validation of the baselines' hyper-parameter dataclasses: one error message style for all of them.

Every check raises ``ValueError("<Class>.<field> must be <rule>, got <value>")`` so that a bad
``algorithm_options`` entry in a config names the field and what it accepts.
"""

from __future__ import annotations

import math
from typing import Any


def is_int(value: object) -> bool:
    """True for a Python int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fail(owner: object, field: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{type(owner).__name__}.{field} must be {rule}, got {value!r}")


def check_number(
    owner: object,
    field: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> None:
    """``getattr(owner, field)`` is a number within the given bounds.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class H:
        ...     eta: float = -1.0
        >>> check_number(H(), "eta", min_value=0, min_inclusive=False)
        Traceback (most recent call last):
        ...
        ValueError: H.eta must be a finite number > 0, got -1.0
    """
    value = getattr(owner, field)
    lo = "" if min_value is None else f"{'>=' if min_inclusive else '>'} {min_value:g}"
    hi = "" if max_value is None else f"{'<=' if max_inclusive else '<'} {max_value:g}"
    rule = "a finite number " + (f"{lo} and {hi}" if lo and hi else lo or hi or "")
    ok = is_number(value) and math.isfinite(value)
    if ok and min_value is not None:
        ok = value >= min_value if min_inclusive else value > min_value
    if ok and max_value is not None:
        ok = value <= max_value if max_inclusive else value < max_value
    if not ok:
        raise _fail(owner, field, rule.strip(), value)


def check_int(owner: object, field: str, *, min_value: int = 0) -> None:
    """``getattr(owner, field)`` is an int ``>= min_value``."""
    value = getattr(owner, field)
    if not is_int(value) or value < min_value:
        raise _fail(owner, field, f"an int >= {min_value}", value)


def check_bool(owner: object, field: str) -> None:
    """``getattr(owner, field)`` is True or False."""
    value = getattr(owner, field)
    if not isinstance(value, bool):
        raise _fail(owner, field, "true or false", value)


def check_choice(owner: object, field: str, allowed: tuple[Any, ...]) -> None:
    """``getattr(owner, field)`` is one of ``allowed``."""
    value = getattr(owner, field)
    # Type-exact so that True is not accepted for 1 (nor 1.0 for 1).
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise _fail(owner, field, f"one of {allowed}", value)


def check_optional_positive(owner: object, field: str) -> None:
    """``getattr(owner, field)`` is None (off) or a number > 0 (e.g. ``max_grad_norm``)."""
    value = getattr(owner, field)
    if value is not None and (not is_number(value) or value <= 0):
        raise _fail(owner, field, "a number > 0 or None (off)", value)
