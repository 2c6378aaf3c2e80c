"""IGA's pure math: the conflict mask, the truncated SVD and the maps back to LoRA factors (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import iga
from iga.algorithms import (
    conflict_mask,
    domain_statistics,
    equivalent_gradient,
    lora_factor_grads,
    tangent_projection,
    truncated_svd,
)
from iga.algorithms.projection import DEFAULT_EXACT_MAX_NUMEL

F64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


shapes = st.tuples(st.integers(2, 5), st.integers(1, 6), st.integers(1, 6))


@settings(max_examples=50, deadline=None)
@given(shapes, st.floats(0, 50), st.sampled_from(["relative", "layer", "none"]), st.integers(0, 2**31 - 1))
def test_identical_domain_grads_give_mask_one(shape, tau, norm, seed):
    k_dom, m, n = shape
    g = _randn(m, n, seed=seed).expand(k_dom, m, n)
    assert torch.equal(conflict_mask(g, tau, norm), torch.ones(m, n, dtype=F64))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.floats(0.1, 30), st.integers(0, 2**31 - 1))
def test_opposite_domain_grads_are_suppressed_by_exp_minus_tau(pairs, n, tau, seed):
    g = _randn(pairs, n, seed=seed).abs() + 0.1
    cancelling = torch.cat([g, -g])  # mean exactly 0 per coordinate
    torch.testing.assert_close(conflict_mask(cancelling, tau), torch.full((n,), math.exp(-tau), dtype=F64))


@settings(max_examples=50, deadline=None)
@given(shapes, st.floats(0, 20), st.floats(0, 20), st.integers(0, 2**31 - 1))
def test_mask_is_in_unit_interval_and_decreases_with_tau(shape, tau1, tau2, seed):
    g = _randn(*shape, seed=seed)
    lo, hi = sorted([tau1, tau2])
    m_lo, m_hi = conflict_mask(g, lo), conflict_mask(g, hi)
    assert bool(((m_hi > 0) & (m_hi <= 1)).all())
    assert bool((m_hi <= m_lo).all())


def test_normalisations_and_population_variance():
    g = torch.tensor([[1.0, 4.0, 0.0], [3.0, 0.0, 0.0]], dtype=F64)
    mean, var = domain_statistics(g)
    assert mean.tolist() == [2.0, 2.0, 0.0]
    assert var.tolist() == [1.0, 4.0, 0.0]  # population variance: mean of squared deviations
    tau = 0.7
    torch.testing.assert_close(conflict_mask(g, tau, "none"), torch.exp(-tau * var))
    torch.testing.assert_close(conflict_mask(g, tau, "layer"), torch.exp(-tau * var / (var.mean() + 1e-12)))
    relative = var / (mean**2 + var + 1e-12)
    torch.testing.assert_close(conflict_mask(g, tau, "relative"), torch.exp(-tau * relative))
    assert torch.equal(conflict_mask(g, 0.0), torch.ones(3, dtype=F64))


@pytest.mark.parametrize("k", [2, 4, 8])
def test_pure_noise_gives_relative_vhat_of_k_minus_one_over_k(k):
    # Zero-mean iid domain gradients: V/(Ḡ²+V) = within-domain share of the total sum of squares, a
    # Beta((K−1)/2, 1/2) variable with mean (K−1)/K. So noise alone pushes the mask towards exp(−τ(K−1)/K):
    # the mask measures sampling noise unless per-domain gradients carry more signal than noise (results.md).
    g = torch.randn(k, 400_000, generator=torch.Generator().manual_seed(k), dtype=F64)
    mean, var = domain_statistics(g)
    vhat = var / (mean**2 + var)
    assert float(vhat.mean()) == pytest.approx((k - 1) / k, abs=3e-3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: conflict_mask(torch.zeros(2, 3), -1.0), "tau must be >= 0"),
        (lambda: conflict_mask(torch.zeros(2, 3), 1.0, "global"), r"one of \('relative', 'layer', 'none'\)"),
        (lambda: conflict_mask(torch.zeros(1, 3), 1.0), "K >= 2"),
    ],
)
def test_mask_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _decaying(m, n, seed=0):
    u, _ = torch.linalg.qr(_randn(m, min(m, n), seed=seed))
    v, _ = torch.linalg.qr(_randn(n, min(m, n), seed=seed + 1))
    s = torch.logspace(0, -3, min(m, n), dtype=F64)
    return (u * s) @ v.T + 1e-4 * _randn(m, n, seed=seed + 2)


def test_exact_svd_is_the_best_rank_r_approximation():
    a = _decaying(12, 9)
    r = 3
    u, s, vh = truncated_svd(a, r)
    approx = (u * s) @ vh
    sv = torch.linalg.svdvals(a)
    # Eckart–Young: the Frobenius error equals the tail energy, and nothing beats it.
    assert float(torch.linalg.norm(a - approx)) == pytest.approx(
        float(sv[r:].square().sum().sqrt()), rel=1e-12
    )
    torch.testing.assert_close(s, sv[:r])
    assert u.shape == (12, 3) and vh.shape == (3, 9)


def test_randomized_svd_above_threshold_is_close_and_seeded():
    a = _decaying(300, 200, seed=3)
    r = 8
    assert a.numel() > DEFAULT_EXACT_MAX_NUMEL  # this takes the randomized path
    gen = torch.Generator().manual_seed(5)
    u, s, vh = truncated_svd(a, r, generator=gen)
    opt = float(torch.linalg.svdvals(a)[r:].square().sum().sqrt())
    err = float(torch.linalg.norm(a - (u * s) @ vh))
    assert opt <= err <= 1.02 * opt
    again = truncated_svd(a, r, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip((u, s, vh), again, strict=True))
    exact = truncated_svd(a, r, exact_max_numel=a.numel())
    # Rayleigh–Ritz values from a subspace never exceed the true singular values; here they are within 2%.
    assert bool((s <= exact[1] * (1 + 1e-12)).all()) and bool((s >= 0.98 * exact[1]).all())


def test_svd_refuses_non_finite_input_and_bad_rank():
    a = torch.ones(4, 4)
    a[1, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        truncated_svd(a, 2)
    with pytest.raises(ValueError, match="positive int"):
        truncated_svd(torch.ones(4, 4), 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(2, 7), st.integers(1, 3), st.floats(0.1, 4), st.integers(0, 2**31 - 1))
def test_chain_map_and_projection(m, n, r, s, seed):
    g, a, b = _randn(m, n, seed=seed), _randn(r, n, seed=seed + 1), _randn(m, r, seed=seed + 2)
    grad_a, grad_b = iga.lora_factor_grads(g, a, b, s)
    torch.testing.assert_close(grad_a, s * b.T @ g)
    torch.testing.assert_close(grad_b, s * g @ a.T)
    # svd_rank >= min(m, n) is no projection at all.
    same = lora_factor_grads(g, a, b, s, svd_rank=min(m, n))
    torch.testing.assert_close(same[0], grad_a)
    torch.testing.assert_close(same[1], grad_b)
    # svd_rank = 1 is the chain map of the best rank-1 approximation.
    u, sv, vh = torch.linalg.svd(g, full_matrices=False)
    g1 = sv[0] * torch.outer(u[:, 0], vh[0])
    proj = lora_factor_grads(g, a, b, s, svd_rank=1)
    torch.testing.assert_close(proj[0], s * b.T @ g1)
    torch.testing.assert_close(proj[1], s * g1 @ a.T)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 8), st.integers(3, 8), st.integers(1, 2), st.floats(0.2, 4), st.integers(0, 2**31 - 1))
def test_lora_pro_residual_conditions_and_tangent_projection(m, n, r, s, seed):
    g, a, b = _randn(m, n, seed=seed), _randn(r, n, seed=seed + 1), _randn(m, r, seed=seed + 2)
    grad_a, grad_b = lora_factor_grads(g, a, b, s, lora_map="lora_pro", damping=0.0)
    equiv = equivalent_gradient(grad_a, grad_b, a, b, s)
    residual = g - equiv
    scale = float(g.abs().max())
    assert float((b.T @ residual).abs().max()) <= 1e-9 * scale * float(b.abs().max())
    assert float((residual @ a.T).abs().max()) <= 1e-9 * scale * float(a.abs().max())
    torch.testing.assert_close(equiv, tangent_projection(g, a, b), rtol=1e-8, atol=1e-9 * scale)
    # Among all solutions (grad_A + ZA, grad_B − BZ) it is the one closest to the chain gradients.
    z = _randn(r, r, seed=seed + 3)
    chain_a, chain_b = s * b.T @ g, s * g @ a.T
    slope = 2 * ((grad_a - chain_a) * (z @ a)).sum() - 2 * ((grad_b - chain_b) * (b @ z)).sum()
    assert abs(float(slope)) <= 1e-8 * (1 + float(chain_a.abs().max() + chain_b.abs().max())) * float(
        z.abs().max()
    )


def test_lora_pro_with_peft_zero_b_is_finite():
    g, a = _randn(6, 5), _randn(2, 5, seed=1)
    grad_a, grad_b = lora_factor_grads(g, a, torch.zeros(6, 2, dtype=F64), 2.0, lora_map="lora_pro")
    assert torch.equal(grad_a, torch.zeros_like(grad_a))
    # With B = 0 the tangent space is {Δ_B·A}: the best Δ_B is G Aᵀ(AAᵀ)⁻¹ / s (damped).
    want = g @ a.T @ torch.linalg.inv(a @ a.T + 1e-6 * torch.eye(2, dtype=F64)) / 2.0
    torch.testing.assert_close(grad_b, want)


def test_lora_factor_grads_errors():
    g, a, b = torch.zeros(4, 3), torch.zeros(2, 3), torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"one of \('chain', 'lora_pro'\)"):
        lora_factor_grads(g, a, b, 1.0, lora_map="riemann")
    with pytest.raises(ValueError, match="shapes do not fit"):
        lora_factor_grads(g, b, a, 1.0)
    assert lora_factor_grads(g.half(), a.half(), b.half(), 1.0)[0].dtype == torch.float32
