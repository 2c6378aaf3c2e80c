"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _denormals_back_on():
    """Training code calls ``torch.set_flush_denormal(True)`` (a process-wide CPU flag; denormals made a small model
    1.5-2x slower). Turned back off after every test: with it on, hypothesis refuses to draw floats (it cannot
    represent subnormals) in whatever test the same xdist worker runs next."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)
