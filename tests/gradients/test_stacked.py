"""The batched kernels of iga.gradients.stacked equal the per-layer math they replace, layer by layer (float64)."""

from __future__ import annotations

import pytest
import torch

from iga.algorithms import conflict_mask, domain_statistics, normalised_variance, truncated_svd
from iga.algorithms.lora_map import project_products
from iga.gradients.stacked import (
    flat_mask,
    flat_statistics,
    stacked_mask,
    stacked_project_products,
    stacked_relative_masked_mean,
    stacked_sign_masked_mean,
    stacked_statistics,
    stacked_truncated_svd,
)

TOL = {"rtol": 1e-12, "atol": 1e-14}


def _stack(num=3, k_dom=4, m=12, n=9, seed=0, agreement=0.5):
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(num, 1, m, n, generator=gen, dtype=torch.float64)
    return agreement * shared + torch.randn(num, k_dom, m, n, generator=gen, dtype=torch.float64)


def _per_layer_masked(g, tau, variance_norm, eps, rescale):
    """IGAOptimizer's per-layer path, written with the public per-layer functions."""
    mean, var = domain_statistics(g)
    vhat = normalised_variance(var.clone(), mean.square(), variance_norm, eps)
    mask = torch.exp(-tau * vhat)
    masked = mask * mean
    if rescale:
        masked = masked * mean.norm() / masked.norm().clamp(min=eps)
    sums = torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat.sum()])
    return masked, sums


@pytest.mark.parametrize("k_dom", [2, 3, 5])
def test_stacked_statistics_equal_domain_statistics_per_layer(k_dom):
    stack = _stack(k_dom=k_dom, seed=k_dom)
    mean, var = stacked_statistics(stack)
    for layer in range(stack.shape[0]):
        want_mean, want_var = domain_statistics(stack[layer])
        torch.testing.assert_close(mean[layer], want_mean, **TOL)
        torch.testing.assert_close(var[layer], want_var, **TOL)


@pytest.mark.parametrize("variance_norm", ["relative", "layer", "none"])
@pytest.mark.parametrize("rescale", [False, True])
def test_stacked_mask_equals_the_per_layer_mask(variance_norm, rescale):
    stack = _stack(seed=1)
    tau = 3.0 if variance_norm != "none" else 0.7
    mean, var = stacked_statistics(stack)
    masked, sums = stacked_mask(
        mean, var, mean.square(), tau=tau, variance_norm=variance_norm, eps=1e-12, rescale=rescale
    )
    total = torch.zeros(3, dtype=torch.float64)
    for layer in range(stack.shape[0]):
        want, want_sums = _per_layer_masked(stack[layer], tau, variance_norm, 1e-12, rescale)
        torch.testing.assert_close(masked[layer], want, **TOL)
        total += want_sums
        if variance_norm == "relative" and not rescale:  # the public one-layer function agrees too
            torch.testing.assert_close(masked[layer], conflict_mask(stack[layer], tau) * mean[layer], **TOL)
    torch.testing.assert_close(sums, total, **TOL)
    assert 0 < sums[1] < masked.numel()  # the count below 1/2 is neither empty nor everything: not vacuous


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("k_dom", [2, 4])
def test_fast_relative_path_equals_statistics_then_mask(rescale, k_dom):
    stack = _stack(k_dom=k_dom, seed=2)
    masked, mean, sums = stacked_relative_masked_mean(stack, tau=5.0, eps=1e-12, rescale=rescale)
    want_mean, var = stacked_statistics(stack)
    want, want_sums = stacked_mask(want_mean, var, want_mean.square(), tau=5.0, rescale=rescale)
    torch.testing.assert_close(masked, want, **TOL)
    torch.testing.assert_close(mean, want_mean, **TOL)
    torch.testing.assert_close(sums, want_sums, **TOL)


def test_fast_relative_path_identities():
    same = _stack(k_dom=1, seed=3).expand(-1, 3, -1, -1).contiguous()  # identical domains
    masked, mean, sums = stacked_relative_masked_mean(same, tau=10.0)
    torch.testing.assert_close(masked, same[:, 0], **TOL)  # M = 1
    assert float(sums[0]) == pytest.approx(same[:, 0].numel()) and float(sums[1]) == 0.0
    stack = _stack(seed=4)
    masked, mean, _ = stacked_relative_masked_mean(stack, tau=0.0)  # tau = 0 is the plain mean exactly
    assert torch.equal(masked, mean)
    opposed = torch.cat([stack[:, :1], -stack[:, :1]], dim=1)  # Ḡ = 0 everywhere: V̂ = V/(V + ε) -> 1
    masked, _, sums = stacked_relative_masked_mean(opposed, tau=2.0)
    assert float(masked.abs().max()) == 0.0
    torch.testing.assert_close(sums[0] / opposed[:, 0].numel(), torch.tensor(torch.e**-2.0).double())


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("k_dom", [2, 3, 4])
def test_stacked_sign_path_equals_the_per_layer_sign_mask(rescale, k_dom):
    from iga.algorithms.mask import sign_disagreement

    stack = _stack(k_dom=k_dom, seed=6)
    stack[0, :, 0, 0] = 0.0  # every domain exactly 0: V̂ = 1 there, as sign_disagreement says
    masked, mean, sums = stacked_sign_masked_mean(stack, tau=3.0, eps=1e-12, rescale=rescale)
    total = torch.zeros(3, dtype=torch.float64)
    for layer in range(stack.shape[0]):
        vhat = sign_disagreement(stack[layer])
        mask = torch.exp(-3.0 * vhat)
        want = mask * stack[layer].mean(0)
        if rescale:
            want = want * stack[layer].mean(0).norm() / want.norm()
        torch.testing.assert_close(masked[layer], want, **TOL)
        total += torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat.sum()])
    torch.testing.assert_close(sums, total, **TOL)
    assert 0 < sums[1] < masked.numel()  # some coordinates disagree in sign, not all
    same = stack[:, :1].expand(-1, k_dom, -1, -1).contiguous()
    masked, mean, _ = stacked_sign_masked_mean(same, tau=3.0)  # identical domains: M = 1 but where G = 0
    torch.testing.assert_close(masked, same[:, 0], **TOL)
    masked, mean, _ = stacked_sign_masked_mean(stack, tau=0.0)  # tau = 0 is the plain mean exactly
    assert torch.equal(masked, mean)


@pytest.mark.parametrize(("m", "n", "exact_max"), [(12, 9, 4096), (12, 9, 0), (40, 30, 0), (9, 12, 0)])
def test_stacked_truncated_svd_equals_truncated_svd_per_layer(m, n, exact_max):
    stack = _stack(m=m, n=n, seed=5)[:, 0]
    gens = [torch.Generator().manual_seed(100 + i) for i in range(stack.shape[0])]
    u, s, vh = stacked_truncated_svd(stack, 4, exact_max_numel=exact_max, generators=gens)
    for layer in range(stack.shape[0]):
        gen = torch.Generator().manual_seed(100 + layer)
        wu, ws, wvh = truncated_svd(stack[layer], 4, exact_max_numel=exact_max, generator=gen)
        torch.testing.assert_close(s[layer], ws, **TOL)
        # Singular vectors are defined up to sign: compare the rank-4 reconstructions.
        torch.testing.assert_close((u[layer] * s[layer]) @ vh[layer], (wu * ws) @ wvh, rtol=1e-10, atol=1e-12)


def test_stacked_randomized_svd_depends_on_each_layers_own_generator():
    stack = _stack(m=40, n=30, seed=6)[:, 0]

    def recon(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        u, s, vh = stacked_truncated_svd(stack, 4, exact_max_numel=0, generators=gens)
        return (u * s.unsqueeze(-2)) @ vh

    first, again, other = recon([1, 2, 3]), recon([1, 2, 3]), recon([1, 2, 9])
    assert torch.equal(first, again)  # seeded: a resumed run draws the same projections
    assert torch.equal(first[:2], other[:2]) and not torch.equal(first[2], other[2])


@pytest.mark.parametrize("rank", [None, 3, 30])
@pytest.mark.parametrize("exact_max", [4096, 0])
def test_stacked_project_products_equal_project_products_per_layer(rank, exact_max):
    num, m, n, r = 3, 20, 16, 3
    stack = _stack(num=num, m=m, n=n, seed=7)[:, 0]
    gen = torch.Generator().manual_seed(8)
    a = torch.randn(num, r, n, generator=gen, dtype=torch.float64)
    b = torch.randn(num, m, r, generator=gen, dtype=torch.float64)
    gens = [torch.Generator().manual_seed(i) for i in range(num)]
    g_at, bt_g, energy = stacked_project_products(
        stack, a, b, rank, exact_max_numel=exact_max, generators=gens
    )
    for layer in range(num):
        want = project_products(
            stack[layer],
            a[layer],
            b[layer],
            rank,
            svd_exact_max_numel=exact_max,
            generator=torch.Generator().manual_seed(layer),
        )
        torch.testing.assert_close(g_at[layer], want[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(bt_g[layer], want[1], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(energy[layer], want[2], rtol=1e-10, atol=1e-12)
    if rank == 3:
        assert bool((energy < 1).all())


@pytest.mark.parametrize("variance_norm", ["relative", "layer", "none"])
@pytest.mark.parametrize("rescale", [False, True])
def test_flat_mask_equals_the_mask_of_each_segment(variance_norm, rescale):
    """Tensors laid side by side (factor space): one elementwise pass, per-tensor 'layer' norm and rescale."""
    gen = torch.Generator().manual_seed(9)
    parts = [torch.randn(4, *shape, generator=gen, dtype=torch.float64) for shape in [(3, 5), (7, 3), (6,)]]
    flat = torch.cat([p.reshape(4, -1) for p in parts], dim=1)
    sizes = [p[0].numel() for p in parts]
    tau = 2.0
    mean, var = flat_statistics(flat)
    masked, sums = flat_mask(
        mean, var, mean.square(), tau=tau, segments=sizes, variance_norm=variance_norm, rescale=rescale
    )
    total = torch.zeros(3, dtype=torch.float64)
    for got, part in zip(masked.split(sizes), parts, strict=True):
        want, want_sums = _per_layer_masked(part, tau, variance_norm, 1e-12, rescale)
        torch.testing.assert_close(got.view_as(want), want, **TOL)
        total += want_sums
    torch.testing.assert_close(sums, total, **TOL)


def test_flat_statistics_with_one_domain_give_mask_one():
    grad = torch.randn(1, 17, dtype=torch.float64)
    mean, var = flat_statistics(grad)
    assert torch.equal(mean, grad[0]) and float(var.abs().max()) == 0.0
    masked, sums = flat_mask(mean, var, mean.square(), tau=10.0, segments=[17])
    assert torch.equal(masked, grad[0]) and float(sums[0]) == 17.0


def test_shape_errors_are_explicit():
    with pytest.raises(ValueError, match=r"\(L, K, m, n\) with K >= 2"):
        stacked_statistics(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"\(L, K, m, n\) with K >= 2"):
        stacked_relative_masked_mean(torch.zeros(3, 3, 3), tau=1.0)
    with pytest.raises(ValueError, match=r"\(K, P\)"):
        flat_statistics(torch.zeros(3))
    with pytest.raises(ValueError, match="segments sum to 4"):
        flat_mask(torch.zeros(5), torch.zeros(5), torch.zeros(5), tau=1.0, segments=[4])
    with pytest.raises(ValueError, match="one generator per stacked matrix"):
        stacked_truncated_svd(torch.zeros(2, 30, 30), 2, exact_max_numel=0, generators=[None])
    with pytest.raises(ValueError, match="variance_norm must be one of"):
        stacked_mask(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), tau=1.0, variance_norm="x")
