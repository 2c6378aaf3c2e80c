"""``import iga`` stays torch-free (the CLI imports it at start-up); the core API resolves lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_iga_does_not_import_torch():
    code = "import sys, iga; assert 'torch' not in sys.modules, 'torch imported'; print(iga.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_lazy_names_resolve_to_the_implementations():
    import iga
    from iga.algorithms import iga as iga_module
    from iga.algorithms import iga_config, lora_map, mask
    from iga.gradients import capture

    assert iga.conflict_mask is mask.conflict_mask
    assert iga.lora_factor_grads is lora_map.lora_factor_grads
    assert iga.DomainGradCapture is capture.DomainGradCapture
    assert iga.IGAOptimizer is iga_module.IGAOptimizer
    assert iga.create_iga_optimizer is iga_module.create_iga_optimizer
    assert iga.IGAConfig is iga_config.IGAConfig
    assert {"conflict_mask", "IGAConfig"} <= set(dir(iga))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = iga.nope
