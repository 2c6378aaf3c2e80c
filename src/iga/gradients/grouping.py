"""Bounded stacks of same-shape layers for IGA's batched per-layer work (issue #20).

:class:`~iga.gradients.DomainGradCapture` hands each layer's per-domain sums ``(K, m, n)`` to its consumer inside the
backward, one layer at a time, so that no two layers' full matrices need to be alive together. Batched kernels
(:mod:`iga.gradients.stacked`) need several layers side by side. :class:`LayerStacks` reconciles the two: it
collects the sums of layers that share a shape (and LoRA rank) into one preallocated ``(L, K, m, n)`` stack, hands
the stack to a processing callback as soon as it is full, and bounds what it keeps:

* a stack holds at most ``group_size`` layers, and never more layers than the model has of that shape;
* the open stacks and the processed ones kept for reuse (a fresh multi-MiB CPU buffer costs a page fault per
  4 KiB page on first touch) hold at most ``max_bytes`` together; opening a stack that would exceed it first
  releases the kept buffers, then processes the open stacks, oldest first. A layer whose block alone exceeds
  ``max_bytes / 2`` (so that no stack of two fits) is not stacked: the caller processes it on its own, as before;
* whatever is still open when the backward ends is processed by :meth:`LayerStacks.flush` (the optimizer calls it
  at the start of ``step()``).

So the extra memory of the batched path is at most ``max_bytes`` of stacks plus the working buffers of one stack,
instead of one layer's block plus its working buffers, whatever the number of layers; up to ``max_bytes`` of it
stays allocated between steps.

The capture writes a layer's sums straight into its slot (:meth:`LayerStacks.slot`, passed to
``DomainGradCapture.set_consumer(..., buffer=...)``); sums that arrive elsewhere (an accumulation buffer) are copied
in by :meth:`LayerStacks.add`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from iga.gradients.layers import CapturedLayer

#: Process a full (or flushed) stack: ``(layers, stack)`` with ``stack`` of shape ``(len(layers), K, m, n)``.
Process = Callable[[list[CapturedLayer], Tensor], None]


def stack_key(layer: CapturedLayer) -> tuple[int, int, int | None]:
    """Layers with the same key can share a stack: same ``(m, n)`` and the same LoRA rank."""
    m, n = layer.shape
    return (m, n, layer.rank)


@dataclass(eq=False)
class _Stack:
    key: tuple
    data: Tensor  # (capacity, K, m, n)
    layers: list[CapturedLayer] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return int(self.data.shape[0])

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()


class LayerStacks:
    """Collects same-shape layers' per-domain sums into bounded stacks and processes each stack in one go.

    Args:
        layers: the captured layers that may be stacked (e.g. LoRA layers); the others are never stacked.
        process: called with ``(layers, stack)`` for every full stack, for the open stacks evicted to respect
            ``max_bytes``, and by :meth:`flush`.
        group_size: most layers per stack (>= 2; smaller values turn stacking off).
        max_bytes: most bytes of all open stacks together.

    Example:
        >>> import torch
        >>> from iga.gradients import DomainGradCapture
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
        >>> cap = DomainGradCapture(net)
        >>> seen = []
        >>> stacks = LayerStacks(cap.layers, lambda layers, s: seen.append((len(layers), tuple(s.shape))),
        ...                      group_size=4, max_bytes=2**20)
        >>> for layer in cap.layers:
        ...     stacks.add(layer, torch.randn(2, 3, 3))
        True
        True
        >>> seen    # both layers' blocks processed as one (2, K, m, n) stack once the second arrived
        [(2, (2, 2, 3, 3))]
    """

    def __init__(
        self,
        layers: Sequence[CapturedLayer],
        process: Process,
        *,
        group_size: int,
        max_bytes: int,
    ) -> None:
        self._process = process
        self.group_size, self.max_bytes = group_size, max_bytes
        self._count = Counter(stack_key(layer) for layer in layers)
        self._member = {id(layer) for layer in layers}
        self._open: dict[tuple, _Stack] = {}
        self._where: dict[int, tuple[_Stack, int]] = {}
        # Stacks already processed, kept for reuse: a fresh multi-MiB CPU buffer costs a page fault per 4 KiB page
        # on first touch, measured at ~1/3 of the batched work on the `ci` benchmark.
        self._spare: dict[tuple, Tensor] = {}

    # ------------------------------------------------------------------ sizing
    def capacity(self, layer: CapturedLayer, block_bytes: int) -> int:
        """How many layers like ``layer`` (blocks of ``block_bytes``) one stack takes; < 2 means not stacked."""
        if id(layer) not in self._member:
            return 0
        by_bytes = self.max_bytes // max(block_bytes, 1)
        return int(min(self.group_size, self._count[stack_key(layer)], by_bytes))

    @property
    def open_bytes(self) -> int:
        """Bytes held by the open stacks."""
        return sum(s.nbytes for s in self._open.values())

    @property
    def held_bytes(self) -> int:
        """Bytes held by the open stacks and the processed ones kept for reuse (at most ``max_bytes``)."""
        return self.open_bytes + sum(t.numel() * t.element_size() for t in self._spare.values())

    # ------------------------------------------------------------------ filling
    def slot(
        self, layer: CapturedLayer, shape: tuple[int, int, int], dtype: torch.dtype, device: torch.device
    ) -> Tensor | None:
        """The ``(K, m, n)`` slot where ``layer``'s sums go, or None when the layer is not stacked.

        A layer already in an open stack (a second backward before ``step()``) gets its own slot back, so its new
        sums replace the old ones. Opening a stack may first process older stacks (the byte bound).
        """
        found = self._find(layer, shape, dtype, device)
        return None if found is None else found[0].data[found[1]]

    def _find(
        self, layer: CapturedLayer, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> tuple[_Stack, int] | None:
        held = self._where.get(id(layer))
        if held is not None:
            stack = held[0]
            if stack.data.shape[1:] == shape and stack.data.dtype == dtype and stack.data.device == device:
                return held
            self._run(stack.key)  # sums of another shape for the same layer: the old ones go first
        block = shape[0] * shape[1] * shape[2] * dtype.itemsize
        capacity = self.capacity(layer, block)
        if capacity < 2:
            return None
        key = (stack_key(layer), shape, dtype, device)
        stack = self._open.get(key)
        if stack is None:
            data = self._spare.pop(key, None)
            if data is None or data.shape[0] != capacity:
                data = None
                while self._spare and self.held_bytes + capacity * block > self.max_bytes:
                    self._spare.pop(next(iter(self._spare)))
                while self._open and self.held_bytes + capacity * block > self.max_bytes:
                    self._run(next(iter(self._open)))
                    self._spare.clear()
                data = torch.empty((capacity, *shape), dtype=dtype, device=device)
            stack = self._open[key] = _Stack(key, data)
        return stack, len(stack.layers)

    def add(self, layer: CapturedLayer, grads: Tensor) -> bool:
        """Put ``layer``'s complete sums ``grads`` (K, m, n) into its stack; False when the layer is not stacked
        (the caller processes it alone). A full stack is processed at once."""
        found = self._find(layer, tuple(grads.shape), grads.dtype, grads.device)
        if found is None:
            return False
        stack, index = found
        dest = stack.data[index]
        if dest.data_ptr() != grads.data_ptr():
            dest.copy_(grads)
        if id(layer) not in self._where:
            self._where[id(layer)] = found
            stack.layers.append(layer)
            if len(stack.layers) == stack.capacity:
                self._run(stack.key)
        return True

    # ------------------------------------------------------------------ processing
    def _run(self, key: tuple) -> None:
        stack = self._open.pop(key)
        for layer in stack.layers:
            del self._where[id(layer)]
        try:
            if stack.layers:
                self._process(stack.layers, stack.data[: len(stack.layers)])
        finally:
            self._spare[key] = stack.data

    def flush(self) -> None:
        """Process every open stack (oldest first)."""
        while self._open:
            self._run(next(iter(self._open)))

    def clear(self) -> None:
        """Drop the open stacks without processing them (their buffers are kept for reuse)."""
        for key, stack in self._open.items():
            self._spare[key] = stack.data
        self._open.clear()
        self._where.clear()
