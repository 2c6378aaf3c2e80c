"""Differentiable per-sample (per-row) gradients of LoRA factors (Fishr's penalty reads them).

For a LoRA branch ``z = B·h``, ``h = A·x̃`` (``x̃`` = the dropped-out input that ``A`` sees; the layer adds
``s·z``), the gradient of row i's loss ``ℓ_i`` is

    ∂ℓ_i/∂B = Σ_t δ_{i,t} h_{i,t}ᵀ,     ∂ℓ_i/∂A = Σ_t (Bᵀδ_{i,t}) x̃_{i,t}ᵀ,     δ_{i,t} = ∂ℓ_i/∂z_{i,t}.

Rows of a causal LM do not interact, so ONE ``autograd.grad(Σ_i ℓ_i, z)`` gives every ``δ_{i,t}``; with
``create_graph=True`` the per-row gradients stay differentiable functions of all parameters (the recorded
``x̃, h, z`` are the live activations, not copies). :class:`LoRARecorder` keeps those activations from the last
forward through forward hooks on the ``lora_A`` / ``lora_B`` sub-modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iga.gradients.layers import CapturedLayer
from iga.gradients.losses import IGNORE_INDEX


def per_row_losses(
    logits: Tensor, labels: Tensor, domain_ids: Tensor, num_domains: int, *, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Row losses ``ℓ_i = R_k · Σ_{t∈i} CE_t / N_k`` (row i in domain k, ``R_k`` rows and ``N_k`` supervised tokens),
    so that ``mean_{i∈k} ℓ_i = L_k`` of :func:`~iga.gradients.per_domain_token_loss` and the mean of the per-row
    gradients of domain k is ``∂L_k/∂θ``. With equal token counts ``ℓ_i`` is the row's mean token CE.

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 3, 4)
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 3]])
        >>> per_row_losses(logits, labels, torch.tensor([0, 0]), 1)   # 2 rows, 3 tokens: 2·(2 ln 4)/3, 2·ln 4/3
        tensor([1.8484, 0.9242])
    """
    bsz, seq, vocab = logits.shape
    dtype = torch.promote_types(logits.dtype, torch.float32)
    targets = labels[:, 1:].to(logits.device)
    token = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).to(dtype),
        targets.reshape(-1),
        ignore_index=ignore_index,
        reduction="none",
    ).view(bsz, seq - 1)
    ids = domain_ids.long().to(logits.device)
    row_tokens = (targets != ignore_index).sum(1).to(dtype)
    domain_tokens = torch.zeros(num_domains, dtype=dtype, device=logits.device).index_add(0, ids, row_tokens)
    domain_rows = torch.bincount(ids, minlength=num_domains).to(dtype)
    if bool((domain_tokens[ids] == 0).any()):
        raise ValueError("every domain needs at least one supervised token in this micro-batch")
    return token.sum(1) * domain_rows[ids] / domain_tokens[ids]


@dataclass(eq=False)
class _Recorded:
    x: Tensor | None = None  # input of lora_A (after dropout)
    h: Tensor | None = None  # input of lora_B
    z: Tensor | None = None  # output of lora_B


class LoRARecorder:
    """Forward hooks that keep the live activations of the LoRA branches of ``layers`` from the last forward run
    with autograd enabled; :meth:`per_sample_grads` turns them into per-row factor gradients."""

    def __init__(self, layers: list[CapturedLayer]) -> None:
        if not layers or not all(layer.is_lora for layer in layers):
            raise ValueError("LoRARecorder needs at least one LoRA layer (and only LoRA layers)")
        self.layers = layers
        self._records = [_Recorded() for _ in layers]
        self._handles: list[Any] = []
        for layer, record in zip(layers, self._records, strict=True):
            mod_a, mod_b = layer.module.lora_A[layer.adapter], layer.module.lora_B[layer.adapter]
            self._handles.append(mod_a.register_forward_hook(partial(self._on_a, record)))
            self._handles.append(mod_b.register_forward_hook(partial(self._on_b, record)))

    @staticmethod
    def _on_a(record: _Recorded, module: nn.Module, args: tuple, output: Tensor) -> None:
        if torch.is_grad_enabled() and output.requires_grad:
            record.x = args[0]

    @staticmethod
    def _on_b(record: _Recorded, module: nn.Module, args: tuple, output: Tensor) -> None:
        if torch.is_grad_enabled() and output.requires_grad:
            record.h, record.z = args[0], output

    def parameters(self) -> list[nn.Parameter]:
        """``[A_1, B_1, A_2, B_2, ...]``: the factors whose per-row gradients :meth:`per_sample_grads` returns."""
        return [p for layer in self.layers for p in (layer.lora_A, layer.lora_B) if p is not None]

    def clear(self) -> None:
        """Drop the recorded activations (they hold the last forward's graph alive)."""
        for record in self._records:
            record.x = record.h = record.z = None

    def detach(self) -> None:
        """Remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def per_sample_grads(self, row_losses: Tensor, *, create_graph: bool) -> Tensor:
        """(N, P) per-row gradients of ``row_losses`` (N,) w.r.t. :meth:`parameters`, flattened and concatenated.

        ``create_graph=True`` keeps them differentiable; otherwise they are detached (and cheaper). The graph of
        ``row_losses`` is retained either way, for the trainer's backward.
        """
        missing = [layer.name for layer, r in zip(self.layers, self._records, strict=True) if r.z is None]
        if missing:
            raise RuntimeError(
                f"fishr: no activations recorded for {missing[0]!r}; run the model forward with autograd enabled "
                "(and without reentrant gradient checkpointing on these layers) before computing the loss"
            )
        records = self._records
        outputs = [r.z for r in records]
        deltas = torch.autograd.grad(row_losses.sum(), outputs, create_graph=create_graph, retain_graph=True)
        n = row_losses.shape[0]
        pieces = []
        for layer, record, delta in zip(self.layers, records, deltas, strict=True):
            assert record.x is not None and record.h is not None and layer.lora_B is not None
            if delta.shape[0] != n:
                raise ValueError(
                    f"fishr: {layer.name!r} saw {delta.shape[0]} rows but there are {n} row losses; packed or "
                    "padding-free batches are not supported"
                )
            x, h = (record.x, record.h) if create_graph else (record.x.detach(), record.h.detach())
            b = layer.lora_B if create_graph else layer.lora_B.detach()
            dtype = torch.promote_types(delta.dtype, torch.float32)
            delta, x, h, b = delta.to(dtype), x.to(dtype), h.to(dtype), b.to(dtype)
            grad_b = torch.einsum(
                "btm,btr->bmr", delta.reshape(n, -1, delta.shape[-1]), h.reshape(n, -1, h.shape[-1])
            )
            delta_h = delta.reshape(n, -1, delta.shape[-1]) @ b
            grad_a = torch.einsum("btr,btn->brn", delta_h, x.reshape(n, -1, x.shape[-1]))
            pieces += [grad_a.reshape(n, -1), grad_b.reshape(n, -1)]
        self.clear()
        grads = torch.cat(pieces, dim=1)
        return grads if create_graph else grads.detach()
