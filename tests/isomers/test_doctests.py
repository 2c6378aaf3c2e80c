"""The runnable examples in the generator's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["rng", "text", "build", "presets", "domains", "shortcuts", "skeletons.registry", "__init__"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module("iga.isomers" if name == "__init__" else f"iga.isomers.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
