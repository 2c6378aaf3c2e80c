"""Hugging Face integration: IGA inside ``transformers.Trainer`` and TRL's ``SFTTrainer``, isomer sets as ``datasets``.

Exports are lazy (importing this package imports neither torch nor transformers nor trl):

* :class:`IGATrainer` (``iga.integrations.hf_trainer``) and :class:`IGASFTTrainer` (``iga.integrations.trl``,
  needs ``trl``);
* :func:`isomer_dataset`, :func:`load_isomer_dataset` (``iga.integrations.datasets``);
* :class:`IsomerSetBatchSampler`, :class:`DomainBatchCollator` (``iga.integrations.batching``).

Guide: ``docs/guide.md``. Runnable examples: ``examples/hf_trainer_iga.py``, ``examples/trl_sft_iga.py``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "IGATrainer": "iga.integrations.hf_trainer",
    "IGASFTTrainer": "iga.integrations.trl",
    "isomer_dataset": "iga.integrations.datasets",
    "load_isomer_dataset": "iga.integrations.datasets",
    "IsomerSetBatchSampler": "iga.integrations.batching",
    "DomainBatchCollator": "iga.integrations.batching",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from iga.integrations.batching import DomainBatchCollator as DomainBatchCollator
    from iga.integrations.batching import IsomerSetBatchSampler as IsomerSetBatchSampler
    from iga.integrations.datasets import isomer_dataset as isomer_dataset
    from iga.integrations.datasets import load_isomer_dataset as load_isomer_dataset
    from iga.integrations.hf_trainer import IGATrainer as IGATrainer
    from iga.integrations.trl import IGASFTTrainer as IGASFTTrainer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iga.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
