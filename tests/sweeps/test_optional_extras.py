"""matplotlib and scipy are the ``experiments`` extra: imported only where used, and a clear line when missing."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

import iga.utils.dicts as dicts_module
import iga.utils.extras as extras_module
from iga.sweeps.plots import pyplot
from iga.sweeps.sweep_results import t_quantile_975
from iga.utils.extras import MissingExtraError


def test_doctests():
    assert doctest.testmod(extras_module).failed == 0
    assert doctest.testmod(dicts_module).failed == 0


def test_the_library_and_the_cli_import_neither():
    code = (
        "import sys, iga, iga.cli, iga.runs.pipeline, iga.runs.evaluate, iga.sweeps.collect, "
        "iga.sweeps.sweep_plots, iga.sweeps.launchers, iga.experiments.demo, iga.training.loop\n"
        "print(sorted(m for m in ('matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        MissingExtraError, match=r"figures need the 'matplotlib' package: pip install 'iga\[experiments\]'"
    ):
        pyplot()


def test_missing_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(
        ValueError, match=r"pip install 'iga\[experiments\]'"
    ):  # a ValueError: one line in the CLI
        t_quantile_975.__wrapped__(7)
