"""DomainBed's penalty annealing and optimizer reset, shared by IRM, V-REx and Fishr.

Convention (DomainBed ``IRM``/``VREx``/``Fishr.update``): at optimizer step ``t`` (0-based) the penalty weight is
``warmup_weight`` while ``t < anneal_steps`` (1 for IRM and V-REx, 0 for Fishr) and ``penalty`` from then on; at
``t == anneal_steps`` the optimizer's state (Adam moments and step counts) is cleared, because Adam "doesn't like
the sharp jump in gradient magnitudes that happens at this step" (DomainBed's comment). DomainBed re-creates the
optimizer; clearing ``optimizer.state`` is the same thing for Adam/AdamW/SGD-momentum while keeping
``param_groups``, so the learning-rate scheduler (which DomainBed does not have) keeps its place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from iga.algorithms.base import Algorithm
from iga.algorithms.hparam_checks import check_bool, check_int, check_number
from iga.gradients.capture import DomainGradCapture


@dataclass
class AnnealedPenaltyHParams:
    """Hyper-parameters shared by the annealed penalties.

    Attributes:
        penalty: the penalty weight λ ≥ 0 once annealing is over.
        anneal_steps: optimizer steps with the warm-up weight before λ applies (0 = λ from the start).
        reset_optimizer: clear the optimizer state at ``step == anneal_steps`` (DomainBed: yes).
    """

    penalty: float = 1.0
    anneal_steps: int = 0
    reset_optimizer: bool = True

    def __post_init__(self) -> None:
        check_number(self, "penalty", min_value=0)
        check_int(self, "anneal_steps")
        check_bool(self, "reset_optimizer")


class AnnealedPenalty(Algorithm):
    """Base of the loss-side methods with a DomainBed-annealed penalty (loss-side: ``capture_space = None``).

    Subclasses set ``warmup_weight`` and call :meth:`penalty_weight` once per loss evaluation.
    """

    hparams_cls: ClassVar[type] = AnnealedPenaltyHParams
    warmup_weight: ClassVar[float] = 1.0

    def __init__(self, *, num_domains: int, **hparams: object) -> None:
        super().__init__(num_domains=num_domains, **hparams)
        self._optimizer: torch.optim.Optimizer | None = None
        self._warned_no_optimizer = False

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        # Kept only to clear its state when the penalty switches on; the optimizer itself is unchanged.
        self._optimizer = base_optimizer
        return base_optimizer

    def penalty_weight(self, step: int) -> float:
        """The penalty weight at optimizer step ``step``; clears the optimizer state at ``step == anneal_steps``.

        Called once per micro-batch: with gradient accumulation the state is cleared several times within the
        switching step, before its ``optimizer.step()``, which is the same as clearing it once.
        """
        hp = self.hparams
        if hp.reset_optimizer and hp.anneal_steps > 0 and step == hp.anneal_steps:
            if self._optimizer is not None:
                self._optimizer.state.clear()
            elif not self._warned_no_optimizer:
                warnings.warn(
                    f"{self.name}: reset_optimizer=True but the optimizer was not built with "
                    "algorithm.build_optimizer(...), so its state cannot be cleared at the penalty switch",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._warned_no_optimizer = True
        return float(hp.penalty) if step >= hp.anneal_steps else self.warmup_weight
