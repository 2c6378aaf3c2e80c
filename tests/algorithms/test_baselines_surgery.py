"""PCGrad and CAGrad on hand-made conflicting gradients with known answers, against explicit vector
implementations, a brute-force search of CAGrad's simplex problem, and CAGrad's primal (worst-domain) property."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.algorithms.cagrad import cagrad_weights
from iga.algorithms.pcgrad import pcgrad_weights, projection_orders

F64 = torch.float64


def _gram(g: torch.Tensor) -> torch.Tensor:
    return (g @ g.T).to(F64)


# ------------------------------------------------------------------ PCGrad
def test_pcgrad_known_answer_for_two_conflicting_gradients():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=F64)
    orders = [[0, 1], [1, 0]]
    # g1 − (−1/2)·g2 = (0.5, 0.5); g2 − (−1/1)·g1 = (0, 1)
    torch.testing.assert_close(pcgrad_weights(_gram(g), orders) @ g, torch.tensor([0.25, 0.75], dtype=F64))
    torch.testing.assert_close(
        pcgrad_weights(_gram(g), orders, "sum") @ g, torch.tensor([0.5, 1.5], dtype=F64)
    )


def test_pcgrad_leaves_agreeing_gradients_alone():
    g = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 1.0], [2.0, 1.0, 1.0]], dtype=F64)
    weights = pcgrad_weights(_gram(g), projection_orders(3, seed=0, step=0))
    torch.testing.assert_close(weights, torch.full((3,), 1 / 3, dtype=F64))


def _pcgrad_vectors(g: torch.Tensor, orders: list[list[int]]) -> torch.Tensor:
    """The paper's Algorithm 1 on explicit vectors (LibMTL's loop without j = i)."""
    projected = g.clone()
    for i in range(len(g)):
        for j in orders[i]:
            if j == i:
                continue
            dot = projected[i] @ g[j]
            if dot < 0:
                projected[i] = projected[i] - dot / (g[j] @ g[j]) * g[j]
    return projected.mean(0)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 5), dim=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_pcgrad_weights_reproduce_explicit_projections(k, dim, seed):
    g = torch.randn(k, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    orders = projection_orders(k, seed=seed, step=3)
    assert all(sorted(o) == list(range(k)) for o in orders)
    torch.testing.assert_close(
        pcgrad_weights(_gram(g), orders) @ g, _pcgrad_vectors(g, orders), rtol=1e-10, atol=1e-12
    )


def test_pcgrad_two_domains_project_onto_each_others_normal_plane():
    g = torch.tensor([[2.0, 1.0, 0.0], [-1.0, 0.5, 1.0]], dtype=F64)
    projected_first = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
    assert float(projected_first @ g[1]) == pytest.approx(0.0, abs=1e-14)
    total = pcgrad_weights(_gram(g), [[0, 1], [0, 1]], "sum") @ g
    projected_second = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
    torch.testing.assert_close(total, projected_first + projected_second)


def test_projection_orders_are_seeded_per_step():
    assert projection_orders(6, seed=1, step=5) == projection_orders(6, seed=1, step=5)
    draws = {tuple(map(tuple, projection_orders(6, seed=1, step=s))) for s in range(8)}
    assert len(draws) > 1


# ------------------------------------------------------------------ CAGrad
def test_cagrad_known_answer_for_orthogonal_gradients():
    g = torch.eye(3, dtype=F64)  # by symmetry w is uniform and g_w = ḡ, so d = (1 + c)·ḡ
    for rescale, divisor in ((0, 1.0), (1, 1 + 0.5**2), (2, 1.5)):
        coeffs, w = cagrad_weights(_gram(g), 0.5, rescale)
        torch.testing.assert_close(w, torch.full((3,), 1 / 3, dtype=F64))
        torch.testing.assert_close(coeffs @ g, torch.full((3,), 1.5 / 3 / divisor, dtype=F64))


def test_cagrad_with_zero_radius_is_the_mean():
    g = torch.tensor([[1.0, 0.0], [-3.0, 1.0]], dtype=F64)
    coeffs, _ = cagrad_weights(_gram(g), 0.0, 1)
    torch.testing.assert_close(coeffs, torch.full((2,), 0.5, dtype=F64))


def _objective(a: np.ndarray, c: float, w: np.ndarray) -> float:
    return float(w @ a.mean(1) + c * math.sqrt(max(w @ a @ w, 0.0)))


def test_cagrad_solves_a_conflicting_pair_like_a_grid_search():
    g = torch.tensor([[1.0, 0.0], [-0.8, 0.6]], dtype=F64)
    a = _gram(g).numpy()
    c = 0.5 * math.sqrt(a.mean())
    grid = np.linspace(0.0, 1.0, 200_001)
    w_grid = np.stack([grid, 1 - grid], axis=1)
    values = w_grid @ a.mean(1) + c * np.sqrt(np.einsum("ni,ij,nj->n", w_grid, a, w_grid))
    best = grid[int(np.argmin(values))]
    _, w = cagrad_weights(_gram(g), 0.5, 0)
    assert 0.01 < best < 0.99  # an interior optimum: the test is not about a vertex
    assert float(w[0]) == pytest.approx(best, abs=1e-5)
    assert _objective(a, c, w.numpy()) <= values.min() + 1e-15


def _grads(k: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.randn(k, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    g[-1] -= 1.5 * g[0]  # make at least one pair likely to conflict
    return g


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 5), seed=st.integers(0, 10_000), calpha=st.floats(0.05, 0.95))
def test_cagrad_exact_and_iterative_solvers_agree(k, seed, calpha):
    g = _grads(k, 8, seed)
    a = _gram(g)
    c = calpha * math.sqrt(float(a.mean()))
    _, exact = cagrad_weights(a, calpha, 0)
    _, iterative = cagrad_weights(a, calpha, 0, method="iterative")
    assert _objective(a.numpy(), c, exact.numpy()) <= _objective(a.numpy(), c, iterative.numpy()) + 1e-10


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 4), seed=st.integers(0, 10_000), calpha=st.floats(0.05, 0.95))
def test_cagrad_direction_is_the_best_worst_case_in_its_ball(k, seed, calpha):
    # Primal view: d = argmax_{‖d − ḡ‖ ≤ c‖ḡ‖} min_k g_kᵀd. No sampled point of the ball beats it.
    g = _grads(k, 5, seed)
    coeffs, _ = cagrad_weights(_gram(g), calpha, 0)
    d = coeffs @ g
    mean = g.mean(0)
    radius = calpha * float(mean.norm())
    assert float((d - mean).norm()) <= radius * (1 + 1e-9)
    worst = float((g @ d).min())
    assert worst >= float((g @ mean).min()) - 1e-12  # never worse than ERM's direction
    gen = torch.Generator().manual_seed(seed + 1)
    u = torch.randn(4000, g.shape[1], generator=gen, dtype=F64)
    u = u / u.norm(dim=1, keepdim=True) * radius * torch.rand(4000, 1, generator=gen, dtype=F64) ** (1 / 5)
    assert float((g @ (mean + u).T).min(0).values.max()) <= worst + 1e-9
