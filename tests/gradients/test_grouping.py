"""LayerStacks: same-shape layers are stacked under the size and byte bounds, each processed exactly once, and the
capture writes the sums straight into the stack's slots."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.grouping import LayerStacks, stack_key
from iga.gradients.testing import domain_major_batch, tiny_lora_llama

K = 3


def _net(widths=((4, 6), (4, 6), (4, 6), (5, 6), (4, 6))):
    layers = [nn.Linear(n, m, bias=False) for m, n in widths]
    return nn.ModuleList(layers)


class _Recorder:
    """The process callback: what it received, and the bytes held when it was called."""

    def __init__(self):
        self.calls: list[tuple[list[str], torch.Tensor]] = []

    def __call__(self, layers, stack):
        self.calls.append(([layer.name for layer in layers], stack.clone()))


def _block(layer, seed):
    m, n = layer.shape
    return torch.randn(K, m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_full_stacks_are_processed_at_once_and_the_rest_on_flush():
    cap = DomainGradCapture(_net())
    rec = _Recorder()
    stacks = LayerStacks(cap.layers, rec, group_size=2, max_bytes=2**20)
    blocks = {layer.name: _block(layer, i) for i, layer in enumerate(cap.layers)}
    stacked = [stacks.add(layer, blocks[layer.name]) for layer in cap.layers]
    # Layers 0, 1 fill a stack of 2 (processed then); layer 2 opens another; layer 3 (5 × 4) is alone of its
    # shape, so it is never stacked; layer 4 fills the second stack.
    assert stacked == [True, True, True, False, True]
    assert [names for names, _ in rec.calls] == [["0", "1"], ["2", "4"]]
    for names, stack in rec.calls:
        for i, name in enumerate(names):
            assert torch.equal(stack[i], blocks[name])
    stacks.flush()
    assert len(rec.calls) == 2 and stacks.open_bytes == 0


def test_partial_stacks_wait_for_flush_and_a_repeated_layer_replaces_its_sums():
    cap = DomainGradCapture(_net())
    rec = _Recorder()
    stacks = LayerStacks(cap.layers, rec, group_size=4, max_bytes=2**20)
    first = cap.layers[0]
    stacks.add(first, _block(first, 0))
    newer = _block(first, 1)
    stacks.add(first, newer)  # a second backward before step(): the newer sums win, the layer is not doubled
    stacks.add(cap.layers[1], _block(cap.layers[1], 2))
    assert rec.calls == []
    stacks.flush()
    ((names, stack),) = rec.calls
    assert names == ["0", "1"] and torch.equal(stack[0], newer)


def test_byte_bound_evicts_the_oldest_stack_and_bounds_what_is_held():
    widths = [(4, 6), (4, 6), (3, 6), (3, 6), (4, 6), (3, 6)]
    cap = DomainGradCapture(_net(widths))
    rec = _Recorder()
    block_46 = K * 4 * 6 * 8  # float64
    stacks = LayerStacks(cap.layers, rec, group_size=3, max_bytes=3 * block_46)
    held = []
    for i, layer in enumerate(cap.layers):
        assert stacks.add(layer, _block(layer, i))
        held.append(stacks.held_bytes)
    stacks.flush()
    assert max(held) <= 3 * block_46
    # Opening the (3, 6) stack evicted the (4, 6) one, which was processed with the two layers it had.
    assert rec.calls[0][0] == ["0", "1"]
    assert sorted(n for names, _ in rec.calls for n in names) == [
        str(i) for i in range(6)
    ]  # each exactly once


def test_blocks_larger_than_half_the_bound_are_not_stacked():
    cap = DomainGradCapture(_net())
    rec = _Recorder()
    stacks = LayerStacks(cap.layers, rec, group_size=8, max_bytes=K * 4 * 6 * 8 + 1)
    assert not stacks.add(cap.layers[0], _block(cap.layers[0], 0))
    assert LayerStacks(cap.layers, rec, group_size=1, max_bytes=2**30).capacity(cap.layers[0], 8) == 1
    assert stacks.capacity(cap.layers[3], 1) == 1  # the only layer of its shape


def test_clear_drops_open_stacks_and_keeps_their_buffers_for_reuse():
    cap = DomainGradCapture(_net())
    rec = _Recorder()
    stacks = LayerStacks(cap.layers, rec, group_size=4, max_bytes=2**20)
    slot = stacks.slot(cap.layers[0], (K, 4, 6), torch.float64, torch.device("cpu"))
    stacks.add(cap.layers[0], _block(cap.layers[0], 0))
    stacks.clear()
    stacks.flush()
    assert rec.calls == [] and stacks.open_bytes == 0
    again = stacks.slot(cap.layers[0], (K, 4, 6), torch.float64, torch.device("cpu"))
    assert again.data_ptr() == slot.data_ptr()  # the same memory: no page faults from a fresh buffer
    assert stack_key(cap.layers[0]) == (4, 6, None)


def test_capture_writes_into_the_stack_slots_without_a_copy():
    model = tiny_lora_llama(num_layers=1, seed=0)
    batch = domain_major_batch(num_domains=K, seed=0)
    cap = DomainGradCapture(model)
    rec = _Recorder()
    stacks = LayerStacks(cap.layers, rec, group_size=8, max_bytes=2**20)
    slots, received = {}, {}

    def buffer(layer, shape, dtype, device):
        slots[layer.name] = stacks.slot(layer, shape, dtype, device)
        return slots[layer.name]

    def consumer(layer, grads):
        received[layer.name] = grads.data_ptr()
        assert stacks.add(layer, grads) == (slots[layer.name] is not None)

    cap.set_consumer(consumer, buffer=buffer)
    with cap.domains(batch["domain_ids"], num_domains=K):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], K).mean().backward()
    stacks.flush()
    stacked = [name for name, s in slots.items() if s is not None]
    assert len(stacked) == 6  # q, k, v, o (32 × 32) and gate, up (64 × 32); down (32 × 64) is alone
    assert all(received[name] == slots[name].data_ptr() for name in stacked)
    assert sorted(n for names, _ in rec.calls for n in names) == sorted(stacked)
    with pytest.raises(ValueError, match="only used together with a consumer"):
        DomainGradCapture(model).set_consumer(None, buffer=buffer)
