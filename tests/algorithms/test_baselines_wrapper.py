"""The gradient-side baselines end to end on a tiny Llama + LoRA (float64): the gradients they write equal their
pure functions applied to K-backward reference gradients; skipping, clipping, schedulers and resume."""

from __future__ import annotations

import pytest
import torch

from iga.algorithms import get_algorithm
from iga.algorithms.andmask import and_mask, rescaled_masked_mean
from iga.algorithms.cagrad import cagrad_weights
from iga.algorithms.pcgrad import pcgrad_weights, projection_orders
from iga.algorithms.sandmask import sand_mask
from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.reference import per_domain_grads_kbackward
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-10, "atol": 1e-13}
NORM = "base_model.model.model.norm.weight"


def _setup(name: str, **options):
    model = tiny_lora_llama(num_layers=1, seed=0)
    # Trainable but not captured: keeps ERM's gradient.
    model.get_base_model().model.norm.weight.requires_grad_(True)
    algorithm = get_algorithm(name)(num_domains=K, **options)
    capture = DomainGradCapture(model, space="factor")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, params, capture, lr=0.0, base="sgd")
    return model, optimizer, capture


def _losses(model, batch):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], K)


def _backward(model, capture, batch):
    with capture.domains(batch["domain_ids"], num_domains=K):
        _losses(model, batch).mean().backward()


def _reference(model, batch):
    """K separate forward+backward passes, one per domain's rows."""
    ids = batch["domain_ids"]

    def single(k):
        sub = select_rows(batch, torch.nonzero(ids == k).flatten())
        out = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"])
        zeros = torch.zeros(len(sub["labels"]), dtype=torch.long)
        return per_domain_token_loss(out.logits, sub["labels"], zeros, 1)[0]

    return per_domain_grads_kbackward(model, single, K)


def _expected(name: str, ref: dict[str, torch.Tensor], options: dict) -> dict[str, torch.Tensor]:
    lora = {n: g for n, g in ref.items() if "lora_" in n}
    if name == "andmask":
        return {n: rescaled_masked_mean(g, and_mask(g, options.get("tau", 1.0))) for n, g in lora.items()}
    if name == "sandmask":
        return {
            n: rescaled_masked_mean(g, sand_mask(g, options.get("tau", 0.5), options.get("k", 10.0)))
            for n, g in lora.items()
        }
    gram = sum((g.flatten(1) @ g.flatten(1).T) for g in lora.values())
    if name == "pcgrad":
        weights = pcgrad_weights(gram, projection_orders(K, seed=0, step=0))
    else:
        weights, _ = cagrad_weights(gram, options.get("calpha", 0.5), options.get("rescale", 1))
    return {n: torch.tensordot(weights, g, dims=1) for n, g in lora.items()}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("andmask", {"tau": 1.0}),
        ("sandmask", {"tau": 0.5, "k": 1e-3}),
        ("sandmask", {"tau": 0.2, "k": 1.0}),
        ("pcgrad", {}),
        ("cagrad", {"calpha": 0.5, "rescale": 1}),
        ("cagrad", {"calpha": 0.8, "rescale": 0}),
    ],
)
def test_written_gradients_equal_the_pure_functions_on_reference_grads(name, options):
    model, optimizer, capture = _setup(name, **options)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=1)
    ref = _reference(model, batch)
    model.zero_grad(set_to_none=True)
    _backward(model, capture, batch)
    optimizer.step()
    got = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    expected = _expected(name, ref, options)
    for n, g in expected.items():
        torch.testing.assert_close(got[n], g, **TOL)
    # The rewrite is not vacuous: it differs from ERM's mean gradient somewhere.
    assert any(not torch.allclose(got[n], ref[n].mean(0), rtol=1e-6, atol=0) for n in expected)
    torch.testing.assert_close(got[NORM], ref[NORM].mean(0), **TOL)
    assert optimizer.last_metrics["skipped_steps"] == 0.0 and optimizer.last_metrics["grad_norm"] > 0
    assert capture.factor_grads() == {}  # consumed


def test_non_finite_gradients_skip_the_step_and_warn_once():
    model, optimizer, capture = _setup("pcgrad")
    batch = domain_major_batch(num_domains=K, seed=2)
    lora_b = next(p for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        lora_b[0, 0] = float("nan")
    _backward(model, capture, batch)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        optimizer.step()
    assert optimizer.last_metrics == {"skipped_steps": 1.0, "skipped": 1.0}
    assert all(p.grad is None for p in model.parameters())


def test_clipping_happens_after_the_rewrite():
    model, optimizer, capture = _setup("cagrad", max_grad_norm=1e-3)
    _backward(model, capture, domain_major_batch(num_domains=K, seed=3))
    optimizer.step()
    total = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
    )
    assert float(total) == pytest.approx(1e-3, rel=1e-4)  # clip_grad_norm_ divides by (norm + 1e-6)
    assert optimizer.last_metrics["grad_norm"] > 1e-3  # the pre-clip norm is reported


def test_state_dict_resumes_step_counter_and_scheduler_drives_the_wrapper():
    model, optimizer, capture = _setup("pcgrad")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 + s)
    for seed in range(2):
        _backward(model, capture, domain_major_batch(num_domains=K, seed=seed))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    assert optimizer.param_groups[0]["lr"] == 0.0 and optimizer.step_count == 2
    state = optimizer.state_dict()
    _, fresh, _ = _setup("pcgrad")
    fresh.load_state_dict(state)
    assert fresh.step_count == 2
    _, other, _ = _setup("andmask")
    with pytest.raises(ValueError, match="not a andmask optimizer state_dict"):
        other.load_state_dict(state)


def test_step_without_captured_gradients_is_an_error():
    _, optimizer, _ = _setup("andmask")
    with pytest.raises(RuntimeError, match="no per-domain gradients were captured"):
        optimizer.step()
    with pytest.raises(ValueError, match="closure"):
        optimizer.step(closure=lambda: 0.0)


def test_wrapper_requires_the_captured_parameters_in_the_base_optimizer():
    model = tiny_lora_llama(num_layers=1, seed=0)
    capture = DomainGradCapture(model, space="factor")
    algorithm = get_algorithm("pcgrad")(num_domains=K)
    with pytest.raises(ValueError, match="are not in the base optimizer"):
        algorithm.build_optimizer(
            model, [next(p for p in model.parameters() if p.requires_grad)], capture, lr=0.1
        )
