"""Slow, hook-free references for per-domain gradients (tests and benchmarks only).

* :func:`per_domain_grads_kbackward` — K separate forward+backward passes, one per domain's rows.
* :func:`per_domain_grads_shared_forward` — one forward of all rows, then K ``autograd.grad(L_k,
  retain_graph=True)`` calls (what DomainBed's AND-mask and LibMTL do).

``space="factor"`` returns the gradients of every trainable parameter, keyed by parameter name.
``space="full"`` returns, per adapted layer (keyed by module name, as :class:`~iga.gradients.CapturedLayer`),
the gradient of the effective weight ``W = W0 + s·B·A``: since the output is linear in ``W0`` and the LoRA term
is added to it, ``∂L/∂W = ∂L/∂W0``, obtained by letting ``W0`` require grad for the duration of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from iga.gradients.layers import discover_layers

ReferenceSpace = Literal["factor", "full"]


def _full_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    out: dict[str, nn.Parameter] = {}
    for layer in discover_layers(model):
        if layer.is_lora:
            base = layer.module.base_layer
            if getattr(layer.module, "fan_in_fan_out", False):
                raise ValueError(
                    f"{layer.name!r}: fan_in_fan_out layers are not supported by the full-space reference"
                )
            out[layer.name] = base.weight
        else:
            assert layer.weight is not None
            out[layer.name] = layer.weight
    return out


@contextmanager
def _targets(model: nn.Module, space: ReferenceSpace) -> Iterator[dict[str, nn.Parameter]]:
    if space == "factor":
        yield {n: p for n, p in model.named_parameters() if p.requires_grad}
        return
    if space != "full":
        raise ValueError(f"space must be 'factor' or 'full', got {space!r}")
    weights = _full_weights(model)
    frozen = [p for p in weights.values() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield weights
    finally:
        for p in frozen:
            p.requires_grad_(False)


def per_domain_grads_kbackward(
    model: nn.Module, loss_fn: Callable[[int], Tensor], num_domains: int, *, space: ReferenceSpace = "factor"
) -> dict[str, Tensor]:
    """K separate forward+backward passes: ``loss_fn(k)`` must run the model on domain k's rows only and return
    the scalar ``L_k``. Returns ``{name: Tensor(K, *shape)}``."""
    with _targets(model, space) as params:
        names, tensors = list(params), list(params.values())
        per_domain = []
        for k in range(num_domains):
            grads = torch.autograd.grad(loss_fn(k), tensors, allow_unused=True)
            per_domain.append(
                [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors, strict=True)]
            )
    return {n: torch.stack([d[i] for d in per_domain]) for i, n in enumerate(names)}


def per_domain_grads_shared_forward(
    model: nn.Module, losses_fn: Callable[[], Tensor], *, space: ReferenceSpace = "factor"
) -> dict[str, Tensor]:
    """One forward (``losses_fn()`` returns the (K,) per-domain losses of the whole batch), then K
    ``autograd.grad(L_k, retain_graph=True)`` calls. Returns ``{name: Tensor(K, *shape)}``."""
    with _targets(model, space) as params:
        names, tensors = list(params), list(params.values())
        losses = losses_fn()
        if losses.dim() != 1:
            raise ValueError(
                f"losses_fn must return the (K,) per-domain losses, got shape {tuple(losses.shape)}"
            )
        k_dom = losses.shape[0]
        per_domain = []
        for k in range(k_dom):
            grads = torch.autograd.grad(losses[k], tensors, retain_graph=k < k_dom - 1, allow_unused=True)
            per_domain.append(
                [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors, strict=True)]
            )
    return {n: torch.stack([d[i] for d in per_domain]) for i, n in enumerate(names)}
