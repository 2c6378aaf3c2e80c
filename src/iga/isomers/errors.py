"""Errors of the IsoBench generator.

Every error a user can cause (a bad domain file, a bad config) is an :class:`IsoBenchError`; the CLI prints its
message on one line and exits with code 2. :class:`GeneratorError` is different: it means the solver and the
independent checker disagree, i.e. a bug in a skeleton, and must never be silenced.
"""

from __future__ import annotations


class IsoBenchError(ValueError):
    """Base class of user-facing errors (bad domain file, bad config)."""


class DomainError(IsoBenchError):
    """A domain file is malformed; the message names the file and the key path."""


class ConfigError(IsoBenchError):
    """A suite config (preset, overrides, difficulty) is invalid; the message names the field."""


class GeneratorError(RuntimeError):
    """The solver and the independent checker disagree on an instance (a bug, never user input)."""
