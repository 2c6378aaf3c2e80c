"""Teachers that write the chain of thought a student is distilled from, and logit distillation.

* :class:`SymbolicTeacher` — the generator's gold CoT.
* :class:`HFTeacher` — a local causal LM; greedy or n samples; wrong answers rejected (:func:`distill`).
* :mod:`iga.teachers.kd` — ``per_domain_kl`` and ``TeacherLogits``; a torch module, resolved lazily so that importing
  this package stays light. The run's objective that mixes the KL with the cross-entropy (sft | kd | mix) is
  :func:`iga.training.losses.per_domain_distillation_loss`.
"""

from typing import Any

from iga.teachers.dataset import (
    COT_FIELD,
    SOURCE_FIELD,
    Selection,
    Teacher,
    distill,
    select_cots,
    selection_counts,
)
from iga.teachers.hf import HFTeacher, SamplingConfig, generate_samples
from iga.teachers.symbolic import SymbolicTeacher

_KD_NAMES = ("TeacherLogits", "per_domain_kl")

__all__ = [
    "COT_FIELD",
    "SOURCE_FIELD",
    "HFTeacher",
    "SamplingConfig",
    "Selection",
    "SymbolicTeacher",
    "Teacher",
    "distill",
    "generate_samples",
    "select_cots",
    "selection_counts",
    *_KD_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _KD_NAMES:
        from iga.teachers import kd

        return getattr(kd, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
