"""Nested-dict helpers shared by the CLI and the sweeps (config layering: file, then command line, then overrides)."""

from __future__ import annotations

from typing import Any


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, recursing where both hold a dict (neither argument is modified).

    >>> deep_merge({"lora": {"r": 8, "alpha": 16}, "steps": 5}, {"lora": {"r": 16}})
    {'lora': {'r': 16, 'alpha': 16}, 'steps': 5}
    """
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged
