"""iga_koyama (DomainBed's ``IGA``): the penalty's gradient against an analytic quadratic and against DomainBed's
own double-backprop recipe with one forward per domain (float64)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from iga.algorithms.iga_koyama import IGAKoyama, gradient_variance_penalty
from iga.algorithms.second_order import crosses_attention
from iga.gradients import per_domain_token_loss
from iga.gradients.layers import discover_layers
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3


def test_penalty_and_gradient_on_quadratics_are_exact():
    # L_k = ½ θᵀH_kθ + b_kᵀθ: g_k = H_kθ + b_k, penalty Σ‖g_k − ḡ‖², gradient 2 Σ_k H_k(g_k − ḡ).
    gen = torch.Generator().manual_seed(0)
    mats = [torch.randn(4, 4, generator=gen, dtype=torch.float64) for _ in range(K)]
    hessians = [m @ m.T for m in mats]
    offsets = [torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(K)]
    theta = torch.nn.Parameter(torch.randn(4, generator=gen, dtype=torch.float64))
    losses = torch.stack(
        [0.5 * theta @ h @ theta + b @ theta for h, b in zip(hessians, offsets, strict=True)]
    )
    penalty = gradient_variance_penalty(losses, [theta])
    grads = [h @ theta.detach() + b for h, b in zip(hessians, offsets, strict=True)]
    mean = sum(grads) / K
    expected = sum(((g - mean) ** 2).sum() for g in grads)
    torch.testing.assert_close(penalty.detach(), expected, rtol=1e-13, atol=0)
    (grad,) = torch.autograd.grad(penalty, theta)
    torch.testing.assert_close(
        grad, 2 * sum(h @ (g - mean) for h, g in zip(hessians, grads, strict=True)), rtol=1e-12, atol=0
    )


def _domainbed_objective(model, batch, params, penalty):
    """DomainBed's IGA.update: one forward per domain, create_graph grads, ḡ from a separate grad of the mean."""
    total, grads = 0.0, []
    for k in range(K):
        sub = select_rows(batch, torch.nonzero(batch["domain_ids"] == k).flatten())
        logits = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits
        loss = per_domain_token_loss(
            logits, sub["labels"], torch.zeros(len(sub["labels"]), dtype=torch.long), 1
        )[0]
        total = total + loss
        grads.append(torch.autograd.grad(loss, params, create_graph=True))
    mean_loss = total / K
    mean_grad = torch.autograd.grad(mean_loss, params, retain_graph=True)
    value = sum((g - m).pow(2).sum() for grad in grads for g, m in zip(grad, mean_grad, strict=True))
    return mean_loss + penalty * value


def test_objective_gradient_matches_domainbeds_double_backprop():
    model = tiny_lora_llama(num_layers=1, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    method = IGAKoyama(num_domains=K, penalty=3.0)
    with pytest.warns(RuntimeWarning, match="switching attention from 'sdpa' to 'eager'"):
        method.build_optimizer(model, params, lr=0.0)
    assert model.config._attn_implementation == "eager"
    # Eager attention's softmax runs in fp32; for float64 identities use sdpa's math backend, which is built from
    # differentiable float64 ops.
    model.set_attn_implementation("sdpa")
    batch = domain_major_batch(num_domains=K, ragged=True, seed=2)
    with sdpa_kernel(SDPBackend.MATH):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ours = method.loss(per_domain_token_loss(logits, batch["labels"], batch["domain_ids"], K), step=0)
        reference = _domainbed_objective(model, batch, params, 3.0)
        got = torch.autograd.grad(ours, params)
        want = torch.autograd.grad(reference, params)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-14)
    assert float(method.last_metrics["penalty"]) > 0


def test_zero_penalty_is_erm_and_the_optimizer_must_come_first():
    with pytest.raises(RuntimeError, match="build the optimizer"):
        IGAKoyama(num_domains=2).loss(torch.ones(2, requires_grad=True), step=0)
    net = torch.nn.Linear(2, 1)
    method = IGAKoyama(num_domains=2, penalty=0.0)
    method.build_optimizer(net, net.parameters(), lr=0.1)
    assert float(method.loss(torch.tensor([1.0, 3.0], requires_grad=True), step=0).detach()) == 2.0
    with pytest.raises(ValueError, match="no autograd graph"):
        gradient_variance_penalty(torch.ones(2), list(net.parameters()))


def test_crosses_attention_is_conservative_by_registration_order():
    model = tiny_lora_llama(num_layers=1, seed=0)
    names = [layer.name for layer in discover_layers(model)]
    assert not crosses_attention(model, names[-3:])  # gate/up/down of the last block
    assert crosses_attention(model, names[-4:])  # o_proj lives inside the attention module
