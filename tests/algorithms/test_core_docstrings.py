"""The runnable examples in the core's docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "iga.gradients.partition",
    "iga.gradients.losses",
    "iga.gradients.capture",
    "iga.gradients.grouping",
    "iga.gradients.per_sample",
    "iga.algorithms.mask",
    "iga.algorithms.projection",
    "iga.algorithms.lora_map",
    "iga.algorithms.base",
    "iga.algorithms.optimizer_wrapper",
    "iga.algorithms.registry",
    "iga.algorithms.erm",
    "iga.algorithms.iga",
    "iga.training.data",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
