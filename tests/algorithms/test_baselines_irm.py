"""IRMv1's closed-form penalty against autograd on a dummy scalar multiplying the logits (DomainBed's way)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.algorithms.irm import IRM, irm_penalty
from iga.gradients import per_domain_token_loss


def _batch(rows_per_domain: list[int], seed: int, seq: int = 6, vocab: int = 7, shuffle: bool = True):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.repeat_interleave(torch.arange(len(rows_per_domain)), torch.tensor(rows_per_domain))
    if shuffle:  # rows need not be domain-major
        ids = ids[torch.randperm(len(ids), generator=gen)]
    bsz = len(ids)
    logits = (3 * torch.randn(bsz, seq, vocab, generator=gen, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, vocab, (bsz, seq), generator=gen)
    labels[:, 0] = -100
    labels[torch.rand(bsz, seq, generator=gen) < 0.3] = -100
    labels[:, 1] = torch.randint(0, vocab, (bsz,), generator=gen)  # every row keeps a supervised token
    return logits, labels, ids


def _reference(logits, labels, ids, num_domains, estimator):
    """DomainBed's ``_irm_penalty``: autograd.grad of the CE of scale·logits w.r.t. a scalar scale = 1."""
    out = []
    for k in range(num_domains):
        rows = torch.nonzero(ids == k).flatten()
        parts = [rows] if estimator == "full" else [rows[0::2], rows[1::2]]
        grads = []
        for part in parts:
            scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
            zeros = torch.zeros(len(part), dtype=torch.long)
            loss = per_domain_token_loss(logits[part] * scale, labels[part], zeros, 1)[0]
            grads.append(torch.autograd.grad(loss, [scale], create_graph=True)[0])
        out.append(grads[0] * grads[-1])
    return torch.stack(out)


@settings(max_examples=15, deadline=None)
@given(
    rows=st.lists(st.integers(2, 5), min_size=2, max_size=4),
    seed=st.integers(0, 10_000),
    estimator=st.sampled_from(["halves", "full"]),
)
def test_penalty_and_its_gradient_match_autograd_on_a_scalar_multiplier(rows, seed, estimator):
    logits, labels, ids = _batch(rows, seed)
    ours = irm_penalty(logits, labels, ids, len(rows), estimator=estimator)
    ref = _reference(logits, labels, ids, len(rows), estimator)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-13)
    weights = torch.linspace(0.5, 1.5, len(rows), dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((weights * ours).sum(), logits)
    (g_ref,) = torch.autograd.grad((weights * ref).sum(), logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-13)


def test_the_halves_estimate_can_be_negative_the_full_one_cannot():
    logits, labels, ids = _batch([4, 4], seed=3)
    halves = irm_penalty(logits, labels, ids, 2, estimator="halves")
    full = irm_penalty(logits, labels, ids, 2, estimator="full")
    assert bool((full >= 0).all()) and not torch.equal(halves, full)


def test_halves_need_two_rows_per_domain():
    logits, labels, ids = _batch([2, 1], seed=0)
    with pytest.raises(ValueError, match=r"domain\(s\) \[1\] lack 2 rows.*estimator='full'"):
        irm_penalty(logits, labels, ids, 2)
    assert irm_penalty(logits, labels, ids, 2, estimator="full").shape == (2,)


def test_irm_objective_anneals_and_uses_the_mean_penalty():
    logits, labels, ids = _batch([2, 2, 2], seed=1)
    losses = per_domain_token_loss(logits, labels, ids, 3)
    penalty = irm_penalty(logits, labels, ids, 3).mean()
    irm = IRM(num_domains=3, penalty=50.0, anneal_steps=1, reset_optimizer=False)
    before = irm.loss_from_logits(losses, logits, labels, ids, step=0)
    after = irm.loss_from_logits(losses, logits, labels, ids, step=1)
    torch.testing.assert_close(before, losses.mean() + penalty, rtol=1e-14, atol=0)
    torch.testing.assert_close(after, losses.mean() + 50.0 * penalty, rtol=1e-14, atol=0)
    assert irm.last_metrics["penalty_weight"] == 50.0
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        irm.loss_from_logits(losses[:2], logits, labels, ids, step=0)
