"""AND-mask and SAND-mask on chosen sign patterns, against DomainBed's formulas written out directly."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.algorithms.andmask import and_mask, rescaled_masked_mean, sign_agreement
from iga.algorithms.sandmask import sand_mask

# Four domains, six coordinates with chosen sign patterns:
#   all +, all −, 3 of 4 +, 2 vs 2, one zero and 3 +, all zero.
G = torch.tensor(
    [
        [1.0, -2.0, 1.0, 1.0, 0.0, 0.0],
        [2.0, -1.0, 2.0, 2.0, 1.0, 0.0],
        [0.5, -3.0, 3.0, -1.0, 2.0, 0.0],
        [4.0, -0.5, -1.0, -2.0, 3.0, 0.0],
    ],
    dtype=torch.float64,
)
AGREEMENT = [1.0, 1.0, 0.5, 0.0, 0.75, 0.0]


def test_sign_agreement_of_the_patterns():
    assert sign_agreement(G).tolist() == AGREEMENT


@pytest.mark.parametrize(
    ("tau", "expected"),
    [
        (1.0, [1, 1, 0, 0, 0, 0]),
        (0.75, [1, 1, 0, 0, 1, 0]),
        (0.5, [1, 1, 1, 0, 1, 0]),
        (0.0, [1, 1, 1, 1, 1, 1]),
    ],
)
def test_and_mask_keeps_coordinates_whose_agreement_reaches_tau(tau, expected):
    assert and_mask(G, tau).tolist() == expected


def test_and_mask_update_is_rescaled_masked_mean():
    mask = and_mask(G, 1.0)
    update = rescaled_masked_mean(G, mask)
    mean = G.mean(0)
    # DomainBed: mask ⊙ mean / (1e-10 + mask.sum()/mask.numel()); two of six kept → × 3.
    expected = torch.tensor([mean[0] * 3, mean[1] * 3, 0, 0, 0, 0], dtype=torch.float64) * (
        1 / (1e-10 * 3 + 1)
    )
    torch.testing.assert_close(update, expected, rtol=1e-12, atol=0)
    assert rescaled_masked_mean(G, torch.zeros(6, dtype=torch.float64)).abs().max() == 0


def _sand_reference(grads: list[list[float]], tau: float, k: float) -> list[float]:
    """DomainBed's SANDMask.mask_grads, one coordinate at a time in plain Python."""
    out = []
    for j in range(len(grads[0])):
        column = [g[j] for g in grads]
        mean = sum(column) / len(column)
        var = sum((v - mean) ** 2 for v in column) / (len(column) - 1)
        agreement = abs(sum((v > 0) - (v < 0) for v in column) / len(column))
        if var == 0:
            value = 0.0 if agreement <= tau else 1.0
        else:
            value = max(0.0, math.tanh(k * (agreement - tau) / var))
        out.append(value)
    return out


@pytest.mark.parametrize(("tau", "k"), [(0.5, 10.0), (0.5, 0.1), (0.2, 1.0), (0.8, 3.0)])
def test_sand_mask_matches_the_formula_on_the_patterns(tau, k):
    expected = _sand_reference(G.tolist(), tau, k)
    torch.testing.assert_close(
        sand_mask(G, tau, k), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0
    )


def test_sand_mask_default_tau_keeps_agreeing_coordinates_and_tau_one_zeroes_all():
    assert sand_mask(G, 0.5, 10.0)[:2].min() > 0.95  # full agreement survives
    # DomainBed's default τ = 1 (refused by SANDMaskHParams): the mask is identically zero.
    assert sand_mask(G, 1.0, 10.0).abs().max() == 0


@settings(max_examples=40, deadline=None)
@given(
    grads=st.lists(
        st.lists(st.floats(-5, 5, allow_subnormal=False), min_size=3, max_size=3), min_size=2, max_size=5
    ),
    tau=st.floats(0.0, 0.99),
    k=st.floats(0.01, 100.0),
)
def test_sand_mask_property_matches_reference_and_lies_in_unit_interval(grads, tau, k):
    g = torch.tensor(grads, dtype=torch.float64)
    mask = sand_mask(g, tau, k)
    assert bool(((mask >= 0) & (mask <= 1)).all())
    torch.testing.assert_close(mask, torch.tensor(_sand_reference(grads, tau, k), dtype=torch.float64))
    # AND-mask is SAND-mask's limit: where SAND is positive, AND at the same τ keeps the coordinate.
    assert bool((and_mask(g, tau)[mask > 0] == 1).all())


def test_sand_mask_at_its_defaults_is_and_mask_for_four_domains():
    """K = 4: the agreement is 0, ½ or 1; SAND's tanh is 0 at ½ = τ and saturates at 1 for small gradients."""
    from iga.algorithms.andmask import and_mask

    gen = torch.Generator().manual_seed(0)
    grads = 1e-3 * torch.randn(4, 64, 32, generator=gen, dtype=torch.float64)  # LoRA-sized: σ² ≪ k·½
    sand, anded = sand_mask(grads, 0.5, 10.0), and_mask(grads, 1.0)
    assert torch.equal(sand, anded) and 0 < float(anded.mean()) < 1  # the same 0/1 mask, not all or nothing
    assert not torch.equal(sand_mask(grads, 0.3, 10.0), anded)  # τ off ½ keeps the half-agreeing coordinates
