"""IGA with ``mask_space="factor"``: the mask on the per-domain LoRA-factor gradients, written straight into the
factors' ``.grad`` (float64, tiny Llama + LoRA). Identities (τ = 0, identical domains, one domain: ERM) and a
brute-force per-domain computation (K separate backwards)."""

from __future__ import annotations

import copy

import pytest
import torch

from iga import IGAConfig, IGAOptimizer, create_iga_optimizer
from iga.algorithms import get_algorithm
from iga.gradients import DomainGradCapture
from iga.gradients.stacked import flat_mask, flat_statistics
from iga.gradients.testing import domain_losses, domain_major_batch, reference_domain_grads, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-10, "atol": 1e-13}


def _model(seed=0, **kwargs):
    return tiny_lora_llama(num_layers=1, seed=seed, **kwargs)


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


def _reference_domain_grads(model, batch):
    return reference_domain_grads(model, batch, K, space="factor")


def _brute_force(grads, tau, variance_norm="relative", rescale=False, eps=1e-12, stats=None):
    """IGA's mask on one parameter's (K, *shape) per-domain gradients, coordinate by coordinate."""
    mean = grads.mean(0)
    var, mean_sq = stats if stats is not None else (((grads - mean) ** 2).mean(0), mean**2)
    if variance_norm == "relative":
        vhat = var / (mean_sq + var + eps)
    elif variance_norm == "layer":
        vhat = var / (var.mean() + eps)
    else:
        vhat = var
    masked = torch.exp(-tau * vhat) * mean
    if rescale:
        masked = masked * mean.norm() / masked.norm()
    return masked


def test_factor_space_uses_a_factor_capture_and_computes_no_full_weight_gradient():
    model = _model()
    opt = create_iga_optimizer(model, lr=0.1, mask_space="factor")
    assert opt.capture.space == "factor" and opt.capture.consumer is None
    assert IGAConfig(mask_space="factor").mask_space == "factor" and IGAConfig().mask_space == "coordinate"
    algorithm = get_algorithm("iga")(num_domains=K, mask_space="factor")
    assert algorithm.capture_space == "factor" and get_algorithm("iga")(num_domains=K).capture_space == "full"
    params = [p for p in model.parameters() if p.requires_grad]
    built = algorithm.build_optimizer(model, params, DomainGradCapture(model, space="factor"), lr=0.1)
    assert isinstance(built, IGAOptimizer) and built.config.mask_space == "factor"


def test_tau_zero_reproduces_erm_gradients():
    model = _model(seed=1)
    norm = model.get_base_model().model.norm.weight
    norm.requires_grad_(True)  # not captured: keeps its (mean) autograd gradient
    batch = domain_major_batch(num_domains=K, ragged=True, seed=1)
    erm = _erm_grads(model, batch)
    opt = create_iga_optimizer(model, lr=0.0, base="sgd", tau=0.0, mask_space="factor")
    _iga_backward(opt, model, batch)
    opt.step()
    assert opt.last_metrics["mask_mean"] == 1.0
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, erm[name], **TOL, msg=name)
    # Not vacuous: with tau > 0 the factor gradients change.
    opt.config = IGAConfig(tau=10.0, mask_space="factor")
    opt.zero_grad()
    _iga_backward(opt, model, batch)
    opt.step()
    lora = [n for n in erm if "lora_B" in n]
    assert (
        max(float((_trainable(model)[n].grad - erm[n]).abs().max() / erm[n].abs().max()) for n in lora) > 1e-3
    )


def test_identical_domains_give_mask_one_and_the_erm_update():
    # SGD: the update is linear in the gradient (Adam's first step, g/|g|, would amplify rounding in the
    # gradient's near-zero coordinates).
    batch = domain_major_batch(num_domains=K, rows_per_domain=2, seed=2)
    for key in ("input_ids", "attention_mask", "labels"):  # every domain renders the same rows
        batch[key] = batch[key][:2].repeat(K, 1)
    model = _model(seed=2)
    erm_model = copy.deepcopy(model)
    erm_opt = torch.optim.SGD(list(_trainable(erm_model).values()), lr=0.1)
    erm = _erm_grads(erm_model, batch)
    _losses(erm_model, batch).mean().backward()
    erm_opt.step()

    opt = create_iga_optimizer(model, lr=0.1, base="sgd", tau=10.0, mask_space="factor")
    _iga_backward(opt, model, batch)
    opt.step()
    assert opt.last_metrics["mask_mean"] == pytest.approx(1.0, abs=1e-12)
    assert opt.last_metrics["mask_below_half"] == 0.0
    for name, p in _trainable(model).items():
        torch.testing.assert_close(p.grad, erm[name], **TOL, msg=name)
        torch.testing.assert_close(p.detach(), _trainable(erm_model)[name].detach(), **TOL, msg=name)


def test_one_domain_is_erm():
    """K = 1 (no domain structure: the batch is its only domain) is ERM: V = 0, so M = 1 and G̃ is the mean
    gradient. The capture refuses K < 2, so this pins the masking step on ERM's own factor gradients."""
    model = _model(seed=3)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=3)
    erm = _erm_grads(model, batch)
    names = [n for n in erm if "lora_" in n]
    flat = torch.cat([erm[n].reshape(1, -1) for n in names], dim=1)
    mean, var = flat_statistics(flat)
    masked, sums = flat_mask(mean, var, mean.square(), tau=10.0, segments=[erm[n].numel() for n in names])
    assert torch.equal(masked, flat[0]) and float(sums[0]) == flat.shape[1]


@pytest.mark.filterwarnings("ignore:`lora_bias=True` was passed")
@pytest.mark.parametrize(
    ("variance_norm", "rescale", "tau"),
    [("relative", False, 10.0), ("layer", True, 2.0), ("none", False, 3e4)],
)
def test_written_gradients_equal_a_brute_force_per_domain_computation(variance_norm, rescale, tau):
    model = _model(seed=4, lora_bias=True)  # trainable LoRA biases are masked too in factor space
    batch = domain_major_batch(num_domains=K, rows_per_domain=[2, 1, 3], ragged=True, seed=4)
    ref = _reference_domain_grads(model, batch)
    opt = create_iga_optimizer(
        model,
        lr=0.0,
        base="sgd",
        tau=tau,
        variance_norm=variance_norm,
        rescale=rescale,
        mask_space="factor",
        mask_stat="variance",  # the brute force below is the variance mask
    )
    _iga_backward(opt, model, batch)
    opt.step()
    captured = {id(p) for _, p in opt.capture.factor_parameters()}
    assert any(
        "lora_B" in n and n.endswith("bias") for n, p in _trainable(model).items() if id(p) in captured
    )
    for name, p in _trainable(model).items():
        want = (
            _brute_force(ref[name], tau, variance_norm, rescale) if id(p) in captured else ref[name].mean(0)
        )
        torch.testing.assert_close(p.grad, want, rtol=1e-9, atol=1e-12, msg=name)
    assert 0 < opt.last_metrics["mask_mean"] < 1


@pytest.mark.parametrize("which", ["ema_beta", "domain_ema_beta"])
def test_emas_over_two_steps_equal_a_brute_force_computation(which):
    beta, tau = 0.8, 4.0
    model = _model(seed=5)
    batches = [domain_major_batch(num_domains=K, ragged=True, seed=50 + i) for i in range(2)]
    refs = [_reference_domain_grads(model, b) for b in batches]  # lr = 0: the model does not move
    opt = create_iga_optimizer(
        model, lr=0.0, base="sgd", tau=tau, mask_space="factor", mask_stat="variance", **{which: beta}
    )
    for batch in batches:
        opt.zero_grad()
        _iga_backward(opt, model, batch)
        opt.step()
    for name in (n for n in _trainable(model) if "lora_" in n):
        g1, g2 = refs[0][name], refs[1][name]
        if which == "ema_beta":
            stats = []
            for g in (g1, g2):
                mean = g.mean(0)
                stats.append((((g - mean) ** 2).mean(0), mean**2))
            corr = 1 - beta**2
            var = (beta * (1 - beta) * stats[0][0] + (1 - beta) * stats[1][0]) / corr
            mean_sq = (beta * (1 - beta) * stats[0][1] + (1 - beta) * stats[1][1]) / corr
            want = _brute_force(g2, tau, stats=(var, mean_sq))
        else:
            averaged = (beta * (1 - beta) * g1 + (1 - beta) * g2) / (1 - beta**2)
            want = _brute_force(averaged, tau) / averaged.mean(0) * g2.mean(0)
        torch.testing.assert_close(_trainable(model)[name].grad, want, rtol=1e-8, atol=1e-12, msg=name)


def test_state_dict_round_trip_gives_identical_next_steps():
    kwargs = {
        "lr": 1e-2,
        "mask_space": "factor",
        "mask_stat": "variance",  # ema_beta smooths V
        "ema_beta": 0.9,
        "domain_ema_beta": 0.5,
        "max_grad_norm": 1.0,
    }
    batches = [domain_major_batch(num_domains=K, ragged=True, seed=60 + i) for i in range(4)]

    def run(opt, model, some):
        for batch in some:
            opt.zero_grad()
            _iga_backward(opt, model, batch)
            opt.step()

    model = _model(seed=6)
    opt = create_iga_optimizer(model, **kwargs)
    run(opt, model, batches[:2])
    model_state, opt_state = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(opt_state["iga"]["ema"]) == {name for name, _ in opt.capture.factor_parameters()}
    run(opt, model, batches[2:])
    final = {n: p.detach().clone() for n, p in _trainable(model).items()}

    resumed = _model(seed=99)
    resumed.load_state_dict(model_state)
    opt2 = create_iga_optimizer(resumed, **kwargs)
    opt2.load_state_dict(opt_state)
    run(opt2, resumed, batches[2:])
    for n, p in _trainable(resumed).items():
        assert torch.equal(p, final[n]), n
    coordinate = create_iga_optimizer(_model(seed=6), lr=1e-2, ema_beta=0.9, mask_stat="variance")
    with pytest.raises(ValueError, match="not a captured layer"):
        coordinate.load_state_dict(opt_state)


def test_non_finite_statistics_skip_the_step():
    model = _model(seed=7)
    opt = create_iga_optimizer(model, lr=0.1, mask_space="factor")
    batch = domain_major_batch(num_domains=K, seed=7)
    before = copy.deepcopy(model.state_dict())
    with pytest.warns(RuntimeWarning, match="non-finite gradient statistics"):
        with opt.capture.domains(batch["domain_ids"], num_domains=K):
            (_losses(model, batch).mean() * float("nan")).backward()
        opt.step()
    assert opt.last_metrics["skipped"] == 1.0 and opt.capture.factor_grads() == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    _iga_backward(opt, model, batch)
    opt.step()  # the capture was reset: the next step sees only its own gradients
    assert "skipped" not in opt.last_metrics


def test_misuse_errors_name_the_fix():
    model = _model(seed=8)
    with pytest.raises(
        ValueError, match=r"mask_space='factor' needs a DomainGradCapture\(model, space='factor'\)"
    ):
        IGAOptimizer(
            torch.optim.SGD(model.parameters(), lr=0.1),
            DomainGradCapture(model),
            IGAConfig(mask_space="factor"),
        )
    with pytest.raises(ValueError, match=r"space='factor'\) of this model"):
        create_iga_optimizer(model, lr=0.1, mask_space="factor", capture=DomainGradCapture(model))
    with pytest.raises(
        ValueError,
        match=r"IGAConfig\.mask_space must be one of \('coordinate', 'factor', 'row', 'column', 'layer', 'subspace'\)",
    ):
        IGAConfig(mask_space="full")
    with pytest.raises(
        ValueError, match=r"IGAConfig\.svd_rank must be 'lora' or None with mask_space='factor'"
    ):
        IGAConfig(mask_space="factor", svd_rank=4)
    with pytest.raises(ValueError, match=r"IGAConfig\.lora_map must be 'chain' with mask_space='factor'"):
        IGAConfig(mask_space="factor", lora_map="lora_pro")
    opt = create_iga_optimizer(model, lr=0.1)
    opt.config = IGAConfig(mask_space="factor")
    with pytest.raises(ValueError, match="build a new optimizer to change the mask space"):
        opt.step()
    with pytest.raises(RuntimeError, match="no per-domain gradients were captured"):
        create_iga_optimizer(_model(seed=8), lr=0.1, mask_space="factor").step()
