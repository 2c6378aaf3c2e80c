"""Second derivatives through attention (iga_koyama, Fishr): fused kernels have a backward but no double backward.

``sdpa``'s flash / memory-efficient backends and flash-attention implement a backward whose own derivative is not
implemented, so a backward through ``autograd.grad(..., create_graph=True)`` that crosses attention fails with
"derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented". Eager attention is
built from differentiable ops.
"""

from __future__ import annotations

import warnings

from torch import nn


def crosses_attention(model: nn.Module, module_names: list[str]) -> bool:
    """Whether back-propagating from the output to any of ``module_names`` may cross an attention computation.

    Conservative, by module registration order: true when a module whose class name contains ``"Attention"`` is
    registered after the first named module, or contains one of them (e.g. ``q_proj``, but also ``o_proj``).
    """
    names = set(module_names)
    seen_target = False
    for name, module in model.named_modules():
        is_attention = "Attention" in type(module).__name__
        if is_attention and (seen_target or any(n.startswith(name + ".") for n in names)):
            return True
        seen_target = seen_target or name in names
    return False


def use_double_backward_attention(model: nn.Module, who: str) -> None:
    """Switch a Hugging Face model to eager attention (with a warning) unless it already uses it."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current is None or current == "eager":
        return
    if not hasattr(model, "set_attn_implementation"):
        raise ValueError(
            f"{who} needs second derivatives through attention, which attn_implementation={current!r} does not "
            "provide; load the model with attn_implementation='eager'"
        )
    warnings.warn(
        f"{who}: switching attention from {current!r} to 'eager': the penalty back-propagates through gradients, "
        "and fused attention kernels have no second derivative",
        RuntimeWarning,
        stacklevel=3,
    )
    model.set_attn_implementation("eager")
