"""The runnable examples in the docstrings of the real-model and external-data modules stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "iga.models.resolve",
    "iga.models.chat",
    "iga.external.records",
    "iga.external.reasoning_gym",
    "iga.external.rg_isomers",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "iga.external.rg_isomers":
        pytest.importorskip("reasoning_gym")  # its example imports a few items
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
