"""The runnable examples in the baselines' docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "iga.algorithms.hparam_checks",
    "iga.algorithms.vrex",
    "iga.algorithms.groupdro",
    "iga.algorithms.irm",
    "iga.algorithms.iga_koyama",
    "iga.algorithms.gradient_wrapper",
    "iga.algorithms.andmask",
    "iga.algorithms.sandmask",
    "iga.algorithms.pcgrad",
    "iga.algorithms.cagrad",
    "iga.algorithms.fishr",
    "iga.algorithms.hparams",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
