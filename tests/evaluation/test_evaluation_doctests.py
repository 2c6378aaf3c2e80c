"""The examples in the evaluation modules' docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "iga.evaluation._arrays",
    "iga.evaluation.lcs",
    "iga.evaluation.lcs_report",
    "iga.evaluation.behaviour",
    "iga.evaluation.accuracy",
    "iga.evaluation.scores",
    "iga.evaluation.hidden_states",
    "iga.evaluation.generation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
