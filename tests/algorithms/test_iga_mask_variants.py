"""IGA's mask variants (issue #17): ``mask_space`` row / column / layer / subspace and ``mask_stat="sign"``, on a
tiny Llama + LoRA in float64. The identities of docs/method.md that still hold (τ = 0 is ERM; identical domains
give M = 1; one domain is ERM) and a brute-force computation from K separate backwards, written independently of
the optimizer's code."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga import IGAConfig, create_iga_optimizer
from iga.algorithms import lora_factor_grads
from iga.algorithms.mask import grouped_dims, sign_disagreement
from iga.gradients.testing import domain_losses, domain_major_batch, reference_domain_grads, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-10, "atol": 1e-13}
GROUPED = ("row", "column", "layer")
VARIANTS = [(space, stat) for space in (*GROUPED, "subspace") for stat in ("variance", "sign")] + [
    ("coordinate", "sign"),
    ("factor", "sign"),
]


def _model(seed=0):
    return tiny_lora_llama(num_layers=1, seed=seed)


def _losses(model, batch):
    return domain_losses(model, batch, K)


def _iga_backward(opt, model, batch):
    with opt.capture.domains(batch["domain_ids"], num_domains=K):
        _losses(model, batch).mean().backward()


def _trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _erm_grads(model, batch):
    model.zero_grad(set_to_none=True)
    _losses(model, batch).mean().backward()
    grads = {n: p.grad.clone() for n, p in _trainable(model).items()}
    model.zero_grad(set_to_none=True)
    return grads


def _max_rel_change(model, erm, key):
    names = [n for n in erm if key in n]
    return max(float((_trainable(model)[n].grad - erm[n]).abs().max() / erm[n].abs().max()) for n in names)


@pytest.mark.parametrize(("space", "stat"), [v for v in VARIANTS if v[0] != "subspace"])
def test_tau_zero_without_projection_is_erm_and_tau_positive_is_not(space, stat):
    model = _model(seed=1)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=1)
    erm = _erm_grads(model, batch)
    opt = create_iga_optimizer(
        model, lr=0.0, base="sgd", tau=0.0, svd_rank=None, mask_space=space, mask_stat=stat
    )
    _iga_backward(opt, model, batch)
    opt.step()
    assert opt.last_metrics["mask_mean"] == 1.0
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, erm[name], **TOL, msg=name)
    opt.config = IGAConfig(tau=10.0, svd_rank=None, mask_space=space, mask_stat=stat)
    opt.zero_grad()
    _iga_backward(opt, model, batch)
    opt.step()
    assert _max_rel_change(model, erm, "lora_B") > 1e-3


@pytest.mark.parametrize("stat", ["variance", "sign"])
def test_subspace_at_tau_zero_is_the_rank_r_projection_of_the_mean(stat):
    """τ = 0: ``Σ_i s_i u_i v_iᵀ`` is the best rank-r approximation of Ḡ, i.e. coordinate IGA at τ = 0."""
    batch = domain_major_batch(num_domains=K, ragged=True, seed=2)
    model = _model(seed=2)
    ref_model = copy.deepcopy(model)
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=0.0, mask_space="subspace", mask_stat=stat)
    _iga_backward(opt, model, batch)
    opt.step()
    ref = create_iga_optimizer(ref_model, lr=0.0, base="sgd", tau=0.0)
    _iga_backward(ref, ref_model, batch)
    ref.step()
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, _trainable(ref_model)[name].grad, rtol=1e-8, atol=1e-12, msg=name)
    energies = [v for k, v in opt.last_metrics.items() if k.startswith("energy_kept/")]
    assert len(energies) == 7 and all(0 < e <= 1 + 1e-12 for e in energies)


@pytest.mark.parametrize(("space", "stat"), VARIANTS)
def test_identical_domains_give_mask_one(space, stat):
    batch = domain_major_batch(num_domains=K, rows_per_domain=2, seed=3)
    for key in ("input_ids", "attention_mask", "labels"):  # every domain renders the same rows
        batch[key] = batch[key][:2].repeat(K, 1)
    model = _model(seed=3)
    erm = _erm_grads(model, batch)
    svd_rank = "lora" if space == "subspace" else None
    opt = create_iga_optimizer(
        model, lr=0.0, base="sgd", tau=10.0, svd_rank=svd_rank, mask_space=space, mask_stat=stat
    )
    _iga_backward(opt, model, batch)
    opt.step()
    assert opt.last_metrics["mask_mean"] == pytest.approx(1.0, abs=1e-12)
    assert opt.last_metrics["mask_below_half"] == 0.0
    if space != "subspace":  # subspace keeps the rank-r part of the mean (checked against τ = 0 above)
        for name, p in _trainable(model).items():
            torch.testing.assert_close(p.grad, erm[name], **TOL, msg=name)


def _grouped_masked(grads, space, stat, tau, eps=1e-12):
    """The masked mean of one weight from its (K, m, n) per-domain gradients."""
    return _grouped_mask(grads, space, stat, tau, eps) * grads.mean(0)


def _grouped_mask(grads, space, stat, tau, eps=1e-12):
    """The mask of one weight from its (K, m, n) per-domain gradients, written out group by group."""
    mean = grads.mean(0)
    var = ((grads - mean) ** 2).mean(0)
    out = torch.empty_like(mean)
    m, n = mean.shape
    groups = {
        "row": [(slice(i, i + 1), slice(None)) for i in range(m)],
        "column": [(slice(None), slice(j, j + 1)) for j in range(n)],
        "layer": [(slice(None), slice(None))],
        "coordinate": [(slice(i, i + 1), slice(j, j + 1)) for i in range(m) for j in range(n)],
    }[space]
    for rows, cols in groups:
        if stat == "sign":
            vhat = (1 - torch.sign(grads[:, rows, cols]).mean(0).abs()).mean()
        else:
            v, sq = var[rows, cols].mean(), mean[rows, cols].square().mean()
            vhat = v / (sq + v + eps)
        out[rows, cols] = torch.exp(-tau * vhat)
    return out


def _subspace_masked(grads, rank, stat, tau, eps=1e-12):
    mean = grads.mean(0)
    u, s, vh = torch.linalg.svd(mean, full_matrices=False)
    out = torch.zeros_like(mean)
    for i in range(rank):
        coeffs = torch.stack([u[:, i] @ g @ vh[i] for g in grads])  # c_ki
        if stat == "sign":
            vhat = 1 - torch.sign(coeffs).mean().abs()
        else:
            v = ((coeffs - coeffs.mean()) ** 2).mean()
            vhat = v / (s[i] ** 2 + v + eps)
        out += torch.exp(-tau * vhat) * s[i] * torch.outer(u[:, i], vh[i])
    return out


@pytest.mark.parametrize(
    ("space", "stat", "svd_rank"),
    [
        ("row", "variance", "lora"),
        ("column", "variance", None),
        ("layer", "variance", "lora"),
        ("row", "sign", None),
        ("layer", "sign", "lora"),
        ("coordinate", "sign", "lora"),
        ("subspace", "variance", "lora"),
        ("subspace", "sign", 3),
    ],
)
def test_written_gradients_equal_a_brute_force_per_domain_computation(space, stat, svd_rank):
    model = _model(seed=4)
    batch = domain_major_batch(num_domains=K, rows_per_domain=[2, 1, 3], ragged=True, seed=4)
    tau = 4.0

    ref = reference_domain_grads(model, batch, K)
    opt = create_iga_optimizer(
        model, lr=0.0, base="sgd", tau=tau, svd_rank=svd_rank, mask_space=space, mask_stat=stat
    )
    _iga_backward(opt, model, batch)
    opt.step()
    for layer in opt.capture.layers:
        grads = ref[layer.name]
        a, b = layer.lora_A.detach(), layer.lora_B.detach()
        rank = layer.rank if svd_rank == "lora" else svd_rank
        if space == "subspace":
            masked = _subspace_masked(grads, rank, stat, tau)
            want_a, want_b = lora_factor_grads(masked, a, b, layer.scaling, None, "chain")
        else:
            masked = _grouped_masked(grads, space, stat, tau)
            want_a, want_b = lora_factor_grads(masked, a, b, layer.scaling, rank, "chain")
        torch.testing.assert_close(layer.lora_A.grad, want_a, rtol=1e-7, atol=1e-12, msg=layer.name)
        torch.testing.assert_close(layer.lora_B.grad, want_b, rtol=1e-7, atol=1e-12, msg=layer.name)


def test_grouped_mask_differs_from_the_coordinate_mask():
    """Not vacuous: one statistic per row gives other gradients than one per coordinate."""
    batch = domain_major_batch(num_domains=K, ragged=True, seed=5)
    grads = {}
    for space in ("coordinate", "row", "layer"):
        model = _model(seed=5)
        opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=10.0, svd_rank=None, mask_space=space)
        _iga_backward(opt, model, batch)
        opt.step()
        grads[space] = {n: p.grad.clone() for n, p in _trainable(model).items() if "lora_B" in n}
    for other in ("row", "layer"):
        assert any(not torch.allclose(grads["coordinate"][n], g) for n, g in grads[other].items())


def test_a_resumed_run_with_variants_and_emas_takes_identical_steps():
    for kwargs in (
        {"mask_space": "row", "mask_stat": "variance", "ema_beta": 0.9},
        {"mask_stat": "sign", "domain_ema_beta": 0.5},
        {
            "mask_space": "subspace",
            "svd_exact_max_numel": 0,
        },  # the randomized SVD, reseeded per step and layer
    ):
        batches = [domain_major_batch(num_domains=K, ragged=True, seed=20 + i) for i in range(4)]
        model = _model(seed=6)
        opt = create_iga_optimizer(model, lr=1e-2, **kwargs)
        for b in batches[:2]:
            _iga_backward(opt, model, b)
            opt.step()
            opt.zero_grad()
        model_state, opt_state = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
        for b in batches[2:]:
            _iga_backward(opt, model, b)
            opt.step()
            opt.zero_grad()
        resumed = _model(seed=99)
        resumed.load_state_dict(model_state)
        opt2 = create_iga_optimizer(resumed, lr=1e-2, **kwargs)
        opt2.load_state_dict(opt_state)
        for b in batches[2:]:
            _iga_backward(opt2, resumed, b)
            opt2.step()
            opt2.zero_grad()
        for n, p in _trainable(resumed).items():
            assert torch.equal(p, _trainable(model)[n]), (kwargs, n)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 5),
    n=st.integers(1, 6),
    seed=st.integers(0, 10_000),
)
def test_sign_disagreement_is_in_unit_interval_and_zero_for_agreeing_domains(k, n, seed):
    g = torch.randn(k, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    d = sign_disagreement(g)
    assert d.shape == (n,) and bool(((d >= 0) & (d <= 1)).all())
    assert torch.equal(sign_disagreement(g.abs() + 1e-3), torch.zeros(n, dtype=torch.float64))
    if k % 2 == 0:  # half the domains one sign, half the other: the signs cancel
        opposed = torch.cat([g[: k // 2].abs(), -g[k // 2 :].abs()]) + 0.0
        assert torch.equal(sign_disagreement(opposed), torch.ones(n, dtype=torch.float64))


def test_grouped_dims():
    assert grouped_dims("coordinate", 2) == () and grouped_dims("subspace", 2) == ()
    assert (
        grouped_dims("row", 2) == (1,)
        and grouped_dims("column", 2) == (0,)
        and grouped_dims("layer", 2) == (0, 1)
    )
    assert (
        grouped_dims("row", 1) == ()
        and grouped_dims("column", 1) == (0,)
        and grouped_dims("layer", 1) == (0,)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mask_stat": "agreement"}, r"mask_stat must be one of \('variance', 'sign'\)"),
        ({"mask_stat": "sign", "ema_beta": 0.9}, r"ema_beta must be 0 with mask_stat='sign'"),
        (
            {"mask_space": "subspace", "svd_rank": None},
            r"svd_rank must be 'lora' or a positive int with mask_space='subspace'",
        ),
        (
            {"mask_space": "subspace", "mask_stat": "variance", "ema_beta": 0.5},
            r"ema_beta must be 0 with mask_space='subspace'",
        ),
        (
            {"mask_space": "subspace", "domain_ema_beta": 0.5},
            r"domain_ema_beta must be 0 with mask_space='subspace'",
        ),
        ({"mask_space": "rows"}, r"mask_space must be one of .*'row', 'column', 'layer', 'subspace'"),
    ],
)
def test_bad_variant_options_name_the_field_and_the_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IGAConfig(**kwargs)


@pytest.mark.parametrize(
    ("space", "stat"), [("coordinate", "variance"), ("row", "sign"), ("subspace", "variance")]
)
def test_kept_masks_are_the_masks_applied(space, stat):
    """``keep_masks`` (the selectivity diagnostic) records the very masks of the step, also for the default
    options, which it moves off the stacked path."""
    model = _model(seed=7)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=7)

    ref = reference_domain_grads(model, batch, K)
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=4.0, mask_space=space, mask_stat=stat)
    assert opt.last_masks == {}
    opt.keep_masks = True
    _iga_backward(opt, model, batch)
    opt.step()
    assert sorted(opt.last_masks) == sorted(layer.name for layer in opt.capture.layers)
    for layer in opt.capture.layers:
        kept = opt.last_masks[layer.name]
        if space == "subspace":
            u, mask, vh = kept
            _, s, _ = torch.linalg.svd(ref[layer.name].mean(0), full_matrices=False)
            rebuilt = (u * (mask * s[: layer.rank])) @ vh
            torch.testing.assert_close(
                rebuilt, _subspace_masked(ref[layer.name], layer.rank, stat, 4.0), rtol=1e-7, atol=1e-12
            )
        else:
            torch.testing.assert_close(
                kept, _grouped_mask(ref[layer.name], space, stat, 4.0), rtol=1e-8, atol=1e-12
            )


# ------------------------------------------------------------------------------------------ stat_tokens="logic"
def _doubled(batch, logic_labels):
    return {
        "input_ids": torch.cat([batch["input_ids"], batch["input_ids"]]),
        "attention_mask": torch.cat([batch["attention_mask"], batch["attention_mask"]]),
        "labels": torch.cat([batch["labels"], logic_labels]),
        "domain_ids": torch.cat([batch["domain_ids"], batch["domain_ids"] + K]),
    }


def _logic_step(model, doubled, **options):
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", stat_tokens="logic", **options)
    opt.num_domains = K
    with opt.capture.domains(doubled["domain_ids"], num_domains=2 * K):
        domain_losses(model, doubled, 2 * K).mean().backward()
    opt.step()
    return opt


@pytest.mark.parametrize("space", ["coordinate", "row", "subspace", "factor"])
def test_logic_statistics_on_the_full_labels_are_the_all_tokens_update(space):
    """Identity: when the logic labels are the labels, ``stat_tokens="logic"`` writes ``"all"``'s gradients."""
    batch = domain_major_batch(num_domains=K, ragged=True, seed=8)
    model = _model(seed=8)
    ref_model = copy.deepcopy(model)
    _logic_step(model, _doubled(batch, batch["labels"]), tau=4.0, mask_space=space)
    ref = create_iga_optimizer(ref_model, lr=0.0, base="sgd", tau=4.0, mask_space=space)
    _iga_backward(ref, ref_model, batch)
    ref.step()
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, _trainable(ref_model)[name].grad, rtol=1e-8, atol=1e-12, msg=name)


def test_logic_statistics_mask_the_full_mean_with_the_logic_tokens_statistics():
    batch = domain_major_batch(num_domains=K, ragged=True, seed=9)
    logic = batch["labels"].clone()
    logic[:, 3::2] = -100  # "wording": every other target position leaves the statistics
    doubled = _doubled(batch, logic)
    model = _model(seed=9)

    ref = reference_domain_grads(model, doubled, 2 * K)
    opt = _logic_step(model, doubled, tau=4.0, svd_rank=None, mask_stat="variance")
    changed = 0.0
    for layer in opt.capture.layers:
        grads = ref[layer.name]
        mean, stats = grads[:K].mean(0), grads[K:]
        masked = _grouped_mask(stats, "coordinate", "variance", 4.0) * mean
        a, b = layer.lora_A.detach(), layer.lora_B.detach()
        want_a, want_b = lora_factor_grads(masked, a, b, layer.scaling, None, "chain")
        torch.testing.assert_close(layer.lora_A.grad, want_a, rtol=1e-7, atol=1e-12, msg=layer.name)
        torch.testing.assert_close(layer.lora_B.grad, want_b, rtol=1e-7, atol=1e-12, msg=layer.name)
        all_tokens = _grouped_mask(grads[:K], "coordinate", "variance", 4.0) * mean
        changed = max(changed, float((masked - all_tokens).abs().max() / all_tokens.abs().max()))
    assert changed > 1e-3  # not vacuous: the logic tokens' statistics give another mask


def test_logic_statistics_misuse_names_the_fix():
    batch = domain_major_batch(num_domains=K, ragged=True, seed=10)
    model = _model(seed=10)
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", stat_tokens="logic")
    with pytest.raises(ValueError, match=r"set IGAOptimizer\.num_domains = K"):
        _iga_backward(opt, model, batch)
    opt.num_domains = 2
    with pytest.raises(ValueError, match=r"expects 2K = 4 captured domains .* got 3"):
        _iga_backward(opt, model, batch)
    model = _model(seed=10)
    model.get_base_model().model.norm.weight.requires_grad_(True)
    with pytest.raises(ValueError, match=r"1 trainable parameter\(s\) outside the captured layers"):
        _logic_step(model, _doubled(batch, batch["labels"]))
    with pytest.raises(ValueError, match=r"stat_tokens must be one of \('all', 'logic'\)"):
        IGAConfig(stat_tokens="anchors")
