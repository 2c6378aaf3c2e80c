"""Learning-rate schedules: linear warm-up, then cosine decay to a floor (10 % by default) or constant."""

from __future__ import annotations

import math
from typing import Any


def lr_lambda(step: int, *, warmup_steps: int, total_steps: int, schedule: str, floor: float = 0.1) -> float:
    """Multiplier of the base LR at ``step`` (0-based).

    >>> [round(lr_lambda(s, warmup_steps=2, total_steps=6, schedule="cosine"), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.775, 0.325, 0.1]
    >>> round(lr_lambda(5, warmup_steps=2, total_steps=6, schedule="cosine", floor=0.0), 3)
    0.0
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    frac = (step - warmup_steps) / max(1, total_steps - warmup_steps - 1)  # the last step reaches the floor
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def build_scheduler(
    optimizer: Any, *, warmup_steps: int, total_steps: int, schedule: str, floor: float = 0.1
) -> Any:
    from functools import partial

    import torch

    if not 0.0 <= floor <= 1.0:  # checked once here, not in lr_lambda at every step
        raise ValueError(f"floor must be in [0, 1] (a share of the base LR), got {floor!r}")
    fn = partial(
        lr_lambda, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule, floor=floor
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
