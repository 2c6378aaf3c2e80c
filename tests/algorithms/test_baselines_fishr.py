"""Fishr: per-row LoRA gradient variances against per-sample brute force (one forward per row), the penalty's
gradient against brute-force double backprop, the EMA, annealing and state (float64)."""

from __future__ import annotations

import pytest
import torch

from iga.algorithms.fishr import Fishr, domain_variances, ema_update, fishr_penalty
from iga.gradients import per_domain_token_loss
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-9, "atol": 1e-14}


def _setup(rows_per_domain=(2, 3, 2), **options):
    model = tiny_lora_llama(num_layers=1, seed=0)
    fishr = Fishr(num_domains=K, **{"ema": 0.0, "anneal_steps": 0, "penalty": 1.0, "modules": 2, **options})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = fishr.build_optimizer(model, params, lr=0.0, base="sgd")
    batch = domain_major_batch(num_domains=K, rows_per_domain=list(rows_per_domain), ragged=True, seed=4)
    return model, fishr, optimizer, batch


def _forward(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits, per_domain_token_loss(logits, batch["labels"], batch["domain_ids"], K)


def _brute_force_row_grads(model, batch, params, *, create_graph):
    """One forward per row; ℓ_i = R_k·(n_i/N_k)·(row i's mean token CE); autograd.grad per row."""
    ids = batch["domain_ids"]
    supervised = (batch["labels"][:, 1:] != -100).sum(1).double()
    rows = []
    for i in range(len(ids)):
        k = ids[i]
        sub = select_rows(batch, [i])
        logits = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits
        mean_ce = per_domain_token_loss(logits, sub["labels"], torch.zeros(1, dtype=torch.long), 1)[0]
        scale = (ids == k).sum() * supervised[i] / supervised[ids == k].sum()
        grads = torch.autograd.grad(scale * mean_ce, params, create_graph=create_graph)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    grads = torch.stack(rows)
    return torch.stack([(grads[ids == k] - grads[ids == k].mean(0)).square().mean(0) for k in range(K)])


def test_variances_match_per_sample_brute_force():
    model, fishr, _, batch = _setup()
    selected = fishr.recorder.parameters()
    assert len(selected) == 4 and all(p.requires_grad for p in selected)  # A and B of the last two modules
    logits, _ = _forward(model, batch)
    ours = fishr.gradient_variances(logits, batch["labels"], batch["domain_ids"])
    reference = _brute_force_row_grads(model, batch, selected, create_graph=False)
    torch.testing.assert_close(ours, reference, **TOL)
    assert float(reference.abs().max()) > 0 and float(fishr_penalty(ours).detach()) > 0


def test_penalty_gradient_matches_brute_force_double_backprop():
    model, fishr, _, batch = _setup()
    trainable = [p for p in model.parameters() if p.requires_grad]
    logits, _ = _forward(model, batch)
    ours = torch.autograd.grad(
        fishr_penalty(fishr.gradient_variances(logits, batch["labels"], batch["domain_ids"])),
        trainable,
        allow_unused=True,
    )
    variances = _brute_force_row_grads(model, batch, fishr.recorder.parameters(), create_graph=True)
    reference = torch.autograd.grad(
        (variances - variances.mean(0)).square().mean(), trainable, allow_unused=True
    )
    reached = 0
    for got, want in zip(ours, reference, strict=True):
        if want is None:
            assert got is None or float(got.abs().max()) == 0
            continue
        torch.testing.assert_close(got, want, **TOL)
        reached += 1
    # The penalty's gradient reaches LoRA factors far below the matched modules (second order through activations).
    assert reached == len(trainable)


def test_objective_is_mean_plus_weighted_penalty_and_warmup_is_first_order():
    model, fishr, _, batch = _setup(anneal_steps=1, penalty=3.0, reset_optimizer=False)
    logits, losses = _forward(model, batch)
    warm = fishr.loss_from_logits(losses, logits, batch["labels"], batch["domain_ids"], step=0)
    assert fishr.last_metrics["penalty_weight"] == 0.0 and float(fishr.last_metrics["penalty"]) > 0
    torch.testing.assert_close(warm, losses.mean(), rtol=0, atol=0)
    logits, losses = _forward(model, batch)
    on = fishr.loss_from_logits(losses, logits, batch["labels"], batch["domain_ids"], step=1)
    logits2, _ = _forward(model, batch)
    penalty = fishr_penalty(fishr.gradient_variances(logits2, batch["labels"], batch["domain_ids"]))
    torch.testing.assert_close(on, losses.mean() + 3.0 * penalty, rtol=1e-12, atol=0)


def test_ema_corrections():
    v1, v2 = torch.tensor([1.0, 4.0]), torch.tensor([3.0, 0.0])
    stored, used = ema_update(None, v1, 0.5, 1, "domainbed")
    torch.testing.assert_close(used, v1)  # (0.5·0 + 0.5·v1)/(1 − 0.5)
    _, used = ema_update(stored, v2, 0.5, 2, "domainbed")
    torch.testing.assert_close(used, 0.5 * v1 + v2)
    _, used = ema_update(stored, v2, 0.5, 2, "bias")
    torch.testing.assert_close(used, (0.25 * v1 + 0.5 * v2) / 0.75)
    current = v2.clone().requires_grad_()
    _, used = ema_update(stored, current, 0.9, 2, "domainbed")
    (grad,) = torch.autograd.grad(used.sum(), current)
    torch.testing.assert_close(grad, torch.ones(2))  # DomainBed's point: gradient weight 1 whatever β


def test_ema_state_round_trip_and_validation():
    model, fishr, _, batch = _setup(ema=0.9)
    for _ in range(2):
        logits, losses = _forward(model, batch)
        fishr.loss_from_logits(losses, logits, batch["labels"], batch["domain_ids"], step=5)
    state = fishr.state_dict()
    assert state["ema_updates"] == 2 and state["ema"].shape[0] == K
    fresh = Fishr(num_domains=K, ema=0.9)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.state_dict()["ema"], state["ema"])
    with pytest.raises(ValueError, match="keys 'ema', 'ema_updates'"):
        fresh.load_state_dict({"ema": None})
    with pytest.raises(ValueError, match=r"\(3, P\) tensor"):
        fresh.load_state_dict({"ema": torch.ones(2, 5), "ema_updates": 1})


def test_fishr_needs_two_rows_per_domain_and_a_recorded_forward():
    model, fishr, _, batch = _setup(rows_per_domain=(2, 1, 2))
    with pytest.raises(RuntimeError, match="no activations recorded"):
        fishr.gradient_variances(torch.zeros(5, 10, 64), batch["labels"], batch["domain_ids"])
    logits, _ = _forward(model, batch)
    with pytest.raises(ValueError, match="domain 1 has 1 row"):
        fishr.gradient_variances(logits, batch["labels"], batch["domain_ids"])
    with pytest.raises(ValueError, match=">= 2 rows"):
        domain_variances(torch.ones(3, 2), torch.tensor([0, 0, 1]), 2)
