"""Attaching LoRA adapters through PEFT."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any


def attach_lora(
    model: Any,
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: str | Sequence[str] = "all-linear",
    init: str = "default",
    algorithm: str | None = None,
) -> Any:
    """Wrap ``model`` with LoRA adapters (PEFT) and return the PEFT model.

    ``init="default"`` is PEFT's (B = 0, so the adapted model starts equal to the base); ``init="gaussian"`` is
    PEFT's ``init_lora_weights=False`` (both factors random), useful in numeric tests where B = 0 would make
    A's gradient vanish. IGA's full-space gradients assume ``dropout == 0`` (the chain rule through A needs the
    undropped input); a warning says so when another value is asked for with ``algorithm="iga"``.
    """
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ValueError(f"LoRA rank r must be >= 1, got {r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    if init not in ("default", "gaussian"):
        raise ValueError(f"init must be 'default' or 'gaussian', got {init!r}")
    if dropout > 0 and algorithm == "iga":
        warnings.warn(
            "lora_dropout > 0 breaks IGA's exact full-space identities (grad_A = s·Bᵀ·G); use 0", stacklevel=2
        )
    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        task_type="CAUSAL_LM",
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        init_lora_weights=(init == "default"),
    )
    return get_peft_model(model, cfg)
