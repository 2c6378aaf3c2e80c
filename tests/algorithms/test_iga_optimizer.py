"""IGAOptimizer end to end on a tiny Llama + LoRA (float64): ERM identity, equality with the pure math on
reference per-domain gradients, skipping, clipping, schedulers and exact resume."""

from __future__ import annotations

import copy
import dataclasses
import inspect

import pytest
import torch
from torch import nn

from iga import IGAConfig, IGAOptimizer, create_iga_optimizer
from iga.algorithms import conflict_mask, domain_statistics, lora_factor_grads
from iga.gradients import DomainGradCapture
from iga.gradients.testing import domain_losses, domain_major_batch, reference_domain_grads, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-10, "atol": 1e-13}


def _model(seed=0):
    return tiny_lora_llama(num_layers=1, seed=seed)


def _losses(model, batch):
    return domain_losses(model, batch, K)


def _iga_backward(opt, model, batch, scale=1.0):
    with opt.capture.domains(batch["domain_ids"], num_domains=K):
        (_losses(model, batch).mean() * scale).backward()


def _trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def test_tau_zero_without_projection_reproduces_erm_gradients():
    model = _model()
    norm = model.get_base_model().model.norm.weight
    norm.requires_grad_(True)  # a trainable non-LoRA parameter keeps its (mean) autograd gradient
    batch = domain_major_batch(num_domains=K, ragged=True, seed=1)
    _losses(model, batch).mean().backward()
    erm = {n: p.grad.clone() for n, p in _trainable(model).items()}
    model.zero_grad(set_to_none=True)

    opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=0.0, svd_rank=None, lora_map="chain")
    _iga_backward(opt, model, batch)
    opt.step()
    assert opt.last_metrics["mask_mean"] == 1.0 and opt.last_metrics["mask_below_half"] == 0.0
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, erm[name], **TOL)

    # The identity is not vacuous: with tau > 0 the LoRA gradients change.
    opt.config = IGAConfig(tau=10.0, svd_rank=None)
    opt.zero_grad()
    _iga_backward(opt, model, batch)
    opt.step()
    lora = [n for n in erm if "lora_A" in n]
    assert (
        max(float((_trainable(model)[n].grad - erm[n]).abs().max() / erm[n].abs().max()) for n in lora) > 1e-3
    )
    torch.testing.assert_close(norm.grad, erm["base_model.model.model.norm.weight"], **TOL)


@pytest.mark.parametrize(
    ("lora_map", "svd_rank", "variance_norm", "rescale"),
    [
        ("chain", "lora", "relative", False),
        ("chain", 2, "layer", True),
        ("lora_pro", None, "none", False),
        ("lora_pro", "lora", "relative", True),
    ],
)
def test_written_gradients_equal_the_math_on_reference_domain_grads(
    lora_map, svd_rank, variance_norm, rescale
):
    model = _model(seed=2)
    batch = domain_major_batch(num_domains=K, rows_per_domain=[2, 1, 3], ragged=True, seed=2)
    tau = 4.0 if variance_norm != "none" else 2e4

    ref = reference_domain_grads(model, batch, K)
    opt = create_iga_optimizer(
        model,
        lr=0.0,
        base="sgd",
        tau=tau,
        svd_rank=svd_rank,
        lora_map=lora_map,
        variance_norm=variance_norm,
        rescale=rescale,
        damping=1e-8,
        mask_stat="variance",  # the reference below is the variance mask
    )
    _iga_backward(opt, model, batch)
    opt.step()
    for layer in opt.capture.layers:
        grads = ref[layer.name]
        mean, _ = domain_statistics(grads)
        masked = conflict_mask(grads, tau, variance_norm) * mean
        if rescale:
            masked = masked * mean.norm() / masked.norm()
        rank = layer.rank if svd_rank == "lora" else svd_rank
        want_a, want_b = lora_factor_grads(
            masked, layer.lora_A.detach(), layer.lora_B.detach(), layer.scaling, rank, lora_map, damping=1e-8
        )
        torch.testing.assert_close(layer.lora_A.grad, want_a, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(layer.lora_B.grad, want_b, rtol=1e-8, atol=1e-12)
    if svd_rank is not None:
        energies = [v for k, v in opt.last_metrics.items() if k.startswith("energy_kept/")]
        assert len(energies) == 7 and all(0 < e <= 1 + 1e-12 for e in energies)


def test_non_finite_statistics_skip_the_step_warn_once_and_count():
    model = _model(seed=3)
    batch = domain_major_batch(num_domains=K, seed=3)
    opt = create_iga_optimizer(model, lr=0.1)
    before = copy.deepcopy(model.state_dict())
    with pytest.warns(RuntimeWarning, match="non-finite gradient statistics"):
        _iga_backward(opt, model, batch, scale=float("nan"))
        opt.step()
    _iga_backward(opt, model, batch, scale=float("inf"))
    opt.step()
    assert opt.last_metrics["skipped_steps"] == 2.0 and opt.last_metrics["skipped"] == 1.0
    assert all(p.grad is None for p in _trainable(model).values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert opt.base_optimizer.state == {}  # the base optimizer never stepped
    _iga_backward(opt, model, batch)
    opt.step()  # a finite step afterwards updates the weights
    assert opt.last_metrics["skipped_steps"] == 2.0 and "skipped" not in opt.last_metrics
    assert any(not torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_warns_only_once(recwarn):
    model = _model(seed=3)
    batch = domain_major_batch(num_domains=K, seed=3)
    opt = create_iga_optimizer(model, lr=0.1)
    for _ in range(3):
        _iga_backward(opt, model, batch, scale=float("nan"))
        opt.step()
    assert len([w for w in recwarn if issubclass(w.category, RuntimeWarning)]) == 1


def _run(opt, model, batches):
    for batch in batches:
        opt.zero_grad()
        _iga_backward(opt, model, batch)
        opt.step()


def test_state_dict_round_trip_gives_identical_next_steps():
    kwargs = {
        "lr": 1e-2,
        "mask_stat": "variance",  # ema_beta smooths V
        "ema_beta": 0.9,
        "domain_ema_beta": 0.5,
        "tau_warmup_steps": 3,
        "lora_map": "lora_pro",
        "svd_exact_max_numel": 0,
        "max_grad_norm": 1.0,
    }
    batches = [domain_major_batch(num_domains=K, ragged=True, seed=10 + i) for i in range(4)]
    model = _model(seed=4)
    opt = create_iga_optimizer(model, **kwargs)
    _run(opt, model, batches[:2])
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    assert opt_state["iga"]["step"] == 2 and len(opt_state["iga"]["ema"]) == 7
    assert opt_state["iga"]["domain_ema_steps"] == 2 and len(opt_state["iga"]["domain_ema"]) == 7
    _run(opt, model, batches[2:])
    final = {n: p.detach().clone() for n, p in _trainable(model).items()}

    resumed = _model(seed=99)
    resumed.load_state_dict(model_state)
    opt2 = create_iga_optimizer(resumed, **kwargs)
    opt2.load_state_dict(opt_state)
    _run(opt2, resumed, batches[2:])
    for n, p in _trainable(resumed).items():
        assert torch.equal(p, final[n]), n

    # Without the optimizer state (EMA, step counter, Adam moments) the same steps give other weights.
    fresh = _model(seed=99)
    fresh.load_state_dict(model_state)
    _run(create_iga_optimizer(fresh, **kwargs), fresh, batches[2:])
    assert any(not torch.equal(p, final[n]) for n, p in _trainable(fresh).items())


def test_domain_ema_masks_this_steps_mean_with_statistics_of_the_averaged_domain_gradients():
    """Two steps on one plain float64 Linear (it gets the masked mean directly, no projection) with SGD at lr 0,
    so each step's per-domain gradients are known exactly; the second step's mask comes from the bias-corrected
    EMA (β G1 (1−β) + G2 (1−β)) / (1 − β²) of the per-domain gradients, and multiplies the second step's mean."""
    beta, tau, k_dom = 0.7, 3.0, 2
    net = nn.Linear(3, 2, bias=False).double()
    opt = create_iga_optimizer(net, lr=0.0, base="sgd", tau=tau, domain_ema_beta=beta, mask_stat="variance")
    gen = torch.Generator().manual_seed(0)
    domains = torch.tensor([0, 0, 1, 1])
    per_step = []
    for _ in range(2):
        x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(4, 2, generator=gen, dtype=torch.float64)
        grads = []
        for k in range(k_dom):  # the reference: each domain's mean-loss gradient on its own rows
            rows = domains == k
            grads.append(torch.autograd.grad(((net(x[rows]) - y[rows]) ** 2).mean(), net.weight)[0])
        per_step.append(torch.stack(grads))
        opt.zero_grad()
        with opt.capture.domains(domains, num_domains=k_dom):
            ((net(x) - y) ** 2).mean(1).view(k_dom, 2).mean(1).mean().backward()
        opt.step()
    g1, g2 = per_step
    averaged = (beta * (1 - beta) * g1 + (1 - beta) * g2) / (1 - beta**2)
    want = conflict_mask(averaged, tau) * g2.mean(0)
    torch.testing.assert_close(net.weight.grad, want, rtol=1e-12, atol=1e-15)
    # ... and not the per-step mask of the second step (the option changes something).
    assert not torch.allclose(net.weight.grad, conflict_mask(g2, tau) * g2.mean(0))


def test_domain_ema_with_tau_zero_is_erm_and_a_skipped_step_does_not_enter_the_average():
    model = _model(seed=11)
    batch = domain_major_batch(num_domains=K, seed=11)
    reference = copy.deepcopy(model)
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=0.0, svd_rank=None, domain_ema_beta=0.9)
    _iga_backward(opt, model, batch)
    opt.step()
    _losses(reference, batch).mean().backward()
    for (name, p), (_, q) in zip(_trainable(model).items(), _trainable(reference).items(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, **TOL, msg=name)
    kept = {k: v.clone() for k, v in opt.state_dict()["iga"]["domain_ema"].items()}
    with pytest.warns(RuntimeWarning, match="non-finite"):
        _iga_backward(opt, model, batch, scale=float("nan"))
        opt.step()
    state = opt.state_dict()["iga"]
    assert state["domain_ema_steps"] == 1
    assert all(torch.equal(state["domain_ema"][k], v) for k, v in kept.items())


def test_lr_scheduler_and_param_groups_pass_through():
    model = _model(seed=5)
    opt = create_iga_optimizer(model, lr=0.1, tau_warmup_steps=2, tau=6.0)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is opt.base_optimizer.param_groups
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    batch = domain_major_batch(num_domains=K, seed=5)
    taus = []
    for _ in range(3):
        _iga_backward(opt, model, batch)
        opt.step()
        sched.step()
        opt.zero_grad()
        taus.append(opt.last_metrics["tau"])
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert taus == [0.0, 3.0, 6.0]


def test_clipping_happens_after_the_rewrite():
    batch = domain_major_batch(num_domains=K, seed=6)
    grads = {}
    for clip in (None, 1e-3):
        model = _model(seed=6)
        opt = create_iga_optimizer(model, lr=0.0, base="sgd", max_grad_norm=clip)
        _iga_backward(opt, model, batch)
        opt.step()
        grads[clip] = torch.cat([p.grad.flatten() for p in _trainable(model).values()])
        raw_norm = opt.last_metrics["grad_norm"]
    assert float(grads[None].norm()) == pytest.approx(raw_norm)
    assert raw_norm > 1e-3
    assert float(grads[1e-3].norm()) == pytest.approx(1e-3, rel=1e-4)  # clip_grad_norm_ adds 1e-6 to the norm
    torch.testing.assert_close(grads[1e-3], grads[None] * (1e-3 / raw_norm), rtol=1e-4, atol=0)


def test_misuse_errors():
    model = _model(seed=7)
    opt = create_iga_optimizer(model, lr=0.1)
    with pytest.raises(RuntimeError, match=r"no per-domain gradients were captured.*capture\.domains"):
        opt.step()
    with pytest.raises(ValueError, match="closure"):
        opt.step(lambda: 0.0)
    with pytest.raises(ValueError, match="already has a consumer"):
        IGAOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), opt.capture)
    with pytest.raises(ValueError, match="space='full'"):
        IGAOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), DomainGradCapture(model, space="factor"))
    with pytest.raises(ValueError, match="not in the base optimizer"):
        IGAOptimizer(torch.optim.SGD([next(model.parameters())], lr=0.1), DomainGradCapture(model))
    with pytest.raises(ValueError, match="no LoRA layers found in model"):
        create_iga_optimizer(nn.Sequential(nn.LayerNorm(3)), lr=0.1)
    with pytest.raises(ValueError, match=r"base optimizer must be one of \('adamw', 'adam', 'sgd'\)"):
        create_iga_optimizer(_model(seed=7), lr=0.1, base="lion")
    with pytest.raises(ValueError, match=r"IGAConfig\.lora_map must be one of"):
        create_iga_optimizer(_model(seed=7), lr=0.1, lora_map="pro")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("tau", -1.0, ">= 0"),
        ("tau_warmup_steps", 1.5, "int >= 0"),
        ("variance_norm", "global", r"\('relative', 'layer', 'none'\)"),
        ("ema_beta", 1.0, r"\[0, 1\)"),
        ("domain_ema_beta", -0.1, r"\[0, 1\)"),
        ("rescale", "yes", "true or false"),
        ("svd_rank", 0, "'lora', a positive int or None"),
        ("svd_rank", "full", "'lora', a positive int or None"),
        ("svd_exact_max_numel", -1, "int >= 0"),
        ("lora_map", "svd", r"\('chain', 'lora_pro'\)"),
        ("damping", -1e-3, ">= 0"),
        ("eps", 0.0, "> 0"),
        ("max_grad_norm", 0.0, "> 0 or None"),
        ("mask_space", "weight", r"\('coordinate', 'factor', 'row', 'column', 'layer', 'subspace'\)"),
        ("layer_group_size", 0, "int >= 1"),
        ("layer_group_max_bytes", -1, "int >= 0"),
    ],
)
def test_config_validation_names_field_and_allowed_values(field, value, match):
    with pytest.raises(ValueError, match=rf"IGAConfig\.{field} must .*{match}"):
        IGAConfig(**{field: value})


def test_factory_exposes_every_config_field_with_the_same_default():
    params = inspect.signature(create_iga_optimizer).parameters
    for f in dataclasses.fields(IGAConfig):
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name
