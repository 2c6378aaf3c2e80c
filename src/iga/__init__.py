"""iga: Invariant Gradient Alignment for robust chain-of-thought distillation.

The core API is exported lazily so that ``import iga`` (done by the CLI at start-up) never imports torch:
``iga.conflict_mask``, ``iga.lora_factor_grads``, ``iga.DomainGradCapture``, ``iga.IGAOptimizer``,
``iga.create_iga_optimizer``, ``iga.IGAConfig``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "conflict_mask": "iga.algorithms.mask",
    "lora_factor_grads": "iga.algorithms.lora_map",
    "DomainGradCapture": "iga.gradients.capture",
    "IGAOptimizer": "iga.algorithms.iga",
    "create_iga_optimizer": "iga.algorithms.iga",
    "IGAConfig": "iga.algorithms.iga_config",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from iga.algorithms.iga import IGAOptimizer as IGAOptimizer
    from iga.algorithms.iga import create_iga_optimizer as create_iga_optimizer
    from iga.algorithms.iga_config import IGAConfig as IGAConfig
    from iga.algorithms.lora_map import lora_factor_grads as lora_factor_grads
    from iga.algorithms.mask import conflict_mask as conflict_mask
    from iga.gradients.capture import DomainGradCapture as DomainGradCapture


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iga' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
