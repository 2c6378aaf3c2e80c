"""Helpers shared by the CLI commands: one clear error line instead of a traceback, ``key=value`` overrides."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that are the user's to fix: shown as one message, exit code 2. Anything else is a bug: traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def user_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def parse_overrides(pairs: list[str] | None, *, what: str) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` → ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"{what} must look like key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out
