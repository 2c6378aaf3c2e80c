"""iga.utils.padding: the right padding shared by the training collator and the micro base's rows."""

from __future__ import annotations

import doctest

import iga.utils.padding as padding


def test_the_docstring_example_runs():
    result = doctest.testmod(padding)
    assert result.attempted == 2 and result.failed == 0
