"""First-order Fish against an explicit inner loop written with plain autograd and SGD (float64)."""

from __future__ import annotations

import copy

import pytest
import torch

from iga.algorithms.fish import Fish, domain_order
from iga.gradients import per_domain_token_loss
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3
LR, META_LR, SEED, STEP = 0.5, 0.3, 7, 4


def _domain_loss(model, batch, k):
    sub = select_rows(batch, torch.nonzero(batch["domain_ids"] == k).flatten())
    logits = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits
    return per_domain_token_loss(logits, sub["labels"], torch.zeros(len(sub["labels"]), dtype=torch.long), 1)[
        0
    ]


def _backward_fn(model, batch):
    def run(k):
        loss = _domain_loss(model, batch, k)
        loss.backward()
        return loss.detach()

    return run


def _trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def test_meta_step_equals_an_explicit_inner_loop():
    model = tiny_lora_llama(num_layers=1, seed=0)
    reference = copy.deepcopy(model)
    batch = domain_major_batch(num_domains=K, rows_per_domain=2, ragged=True, seed=0)
    fish = Fish(num_domains=K, meta_lr=META_LR, seed=SEED)
    fish.build_optimizer(model, _trainable(model).values(), lr=LR, base="sgd")
    metrics = fish.meta_step(_backward_fn(model, batch), STEP)

    params = _trainable(reference)
    start = {n: p.detach().clone() for n, p in params.items()}
    order = domain_order(K, SEED, STEP)
    assert sorted(order) == list(range(K))
    losses = {}
    for k in order:
        loss = _domain_loss(reference, batch, k)
        losses[k] = float(loss.detach())
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads, strict=True):
                p -= LR * g
    expected = {n: start[n] + META_LR * (params[n].detach() - start[n]) for n in params}
    for n, p in _trainable(model).items():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-12, atol=1e-14)
    assert metrics["loss"] == pytest.approx(sum(losses.values()) / K, rel=1e-12)
    assert all(p.grad is None for p in model.parameters())

    # Not vacuous: gradients are re-evaluated at the moved parameters, which differs from K steps at θ.
    naive = {n: start[n].clone() for n in params}
    with torch.no_grad():
        for n, p in _trainable(reference).items():
            p.copy_(start[n])
    for k in range(K):
        grads = torch.autograd.grad(_domain_loss(reference, batch, k), list(params.values()))
        for n, g in zip(params, grads, strict=True):
            naive[n] -= META_LR * LR * g
    gap = max(float((expected[n] - naive[n]).abs().max()) for n in params)
    assert gap > 1e-6


def test_inner_optimizer_state_persists_and_orders_are_seeded():
    model = tiny_lora_llama(num_layers=1, seed=0)
    fish = Fish(num_domains=K)
    optimizer = fish.build_optimizer(model, _trainable(model).values(), lr=1e-3)  # AdamW
    for step in range(2):
        fish.meta_step(_backward_fn(model, domain_major_batch(num_domains=K, seed=step)), step)
    steps = {float(s["step"]) for s in optimizer.state.values()}
    assert steps == {2.0 * K}  # one inner AdamW step per domain per meta step, state carried over
    assert domain_order(5, 0, 3) == domain_order(5, 0, 3)
    assert len({tuple(domain_order(5, 0, s)) for s in range(10)}) > 1


def test_meta_step_needs_an_optimizer():
    with pytest.raises(RuntimeError, match="build_optimizer"):
        Fish(num_domains=K).meta_step(lambda k: 0.0, 0)
