"""DomainGradCapture: per-domain gradients from one backward equal the K-backward references (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.reference import per_domain_grads_kbackward, per_domain_grads_shared_forward
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-11, "atol": 1e-13}


@pytest.fixture(scope="module")
def model():
    return tiny_lora_llama(num_layers=2, seed=0)


def _losses(model, batch, num_domains=K):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], num_domains)


def _domain_loss_fn(model, batch):
    def loss_k(k: int) -> torch.Tensor:
        rows = torch.nonzero(batch["domain_ids"] == k).flatten()
        sub = select_rows(batch, rows)
        sub["domain_ids"] = torch.zeros(len(rows), dtype=torch.long)
        return _losses(model, sub, 1)[0]

    return loss_k


def _hook_full_grads(model, batch, **capture_kwargs):
    with DomainGradCapture(model, **capture_kwargs) as cap:
        with cap.domains(batch["domain_ids"], num_domains=K):
            _losses(model, batch).mean().backward()
        grads = {layer.name: layer.domain_grads for layer in cap.layers}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("order", ["domain_major", "shuffled"])
def test_full_space_hooks_equal_k_separate_backwards(model, order):
    batch = domain_major_batch(num_domains=K, rows_per_domain=[2, 3, 1], ragged=True, seed=1)
    if order == "shuffled":
        batch = select_rows(batch, torch.tensor([4, 0, 5, 2, 1, 3]))
    ref = per_domain_grads_kbackward(model, _domain_loss_fn(model, batch), K, space="full")
    got = _hook_full_grads(model, batch)
    assert set(got) == set(ref) and len(got) == 14
    for name, grads in got.items():
        assert grads.shape == (K, *ref[name].shape[1:])
        torch.testing.assert_close(grads, ref[name], **TOL)
    # The per-domain gradients really differ by domain (a summed-backward bug would make them proportional).
    g = got["base_model.model.model.layers.0.self_attn.q_proj"]
    assert (g[0] - g[1]).abs().max() > 1e-3 * g.abs().max()


def test_shared_forward_reference_agrees(model):
    batch = domain_major_batch(num_domains=K, ragged=True, seed=2)
    ref = per_domain_grads_shared_forward(model, lambda: _losses(model, batch), space="full")
    got = _hook_full_grads(model, batch)
    for name, grads in got.items():
        torch.testing.assert_close(grads, ref[name], **TOL)


def test_mean_of_domain_grads_is_the_autograd_gradient(model):
    batch = domain_major_batch(num_domains=K, ragged=True, seed=3)
    cap = DomainGradCapture(model)
    bases = [layer.module.base_layer.weight for layer in cap.layers]
    for w in bases:
        w.requires_grad_(True)
    try:
        with cap.domains(batch["domain_ids"], num_domains=K):
            _losses(model, batch).mean().backward()
        for layer, w in zip(cap.layers, bases, strict=True):
            torch.testing.assert_close(layer.domain_grads.mean(0), w.grad, **TOL)
            # Chain identity on the autograd LoRA gradients: g_A = s·BᵀḠ, g_B = s·ḠAᵀ.
            mean = layer.domain_grads.mean(0)
            torch.testing.assert_close(layer.lora_A.grad, layer.scaling * layer.lora_B.T @ mean, **TOL)
            torch.testing.assert_close(layer.lora_B.grad, layer.scaling * mean @ layer.lora_A.T, **TOL)
    finally:
        for w in bases:
            w.requires_grad_(False)
            w.grad = None
        cap.detach()
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_gives_the_same_domain_grads(use_reentrant):
    net = tiny_lora_llama(num_layers=2, seed=4)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=4)
    net.train()
    want = _hook_full_grads(net, batch)
    inner = net.get_base_model()
    inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    if use_reentrant:
        inner.enable_input_require_grads()
    assert inner.model.layers[0].gradient_checkpointing
    got = _hook_full_grads(net, batch)
    for name, grads in got.items():
        torch.testing.assert_close(grads, want[name], **TOL)


def test_accumulation_of_two_half_batches_gives_the_same_domain_grads(model):
    # No padding: every row holds the same number of supervised tokens, so the mean of the micro-batches'
    # per-domain means equals the full batch's per-domain mean exactly.
    batch = domain_major_batch(num_domains=K, rows_per_domain=4, seed=5)
    want = _hook_full_grads(model, batch)
    halves = [
        torch.tensor([r for k in range(K) for r in range(4 * k + 2 * h, 4 * k + 2 * h + 2)]) for h in (0, 1)
    ]
    calls: list[str] = []
    cap = DomainGradCapture(model)
    received: dict[str, torch.Tensor] = {}

    def consumer(layer, grads):
        calls.append(layer.name)
        received[layer.name] = grads.clone()

    cap.set_consumer(consumer)
    for i, rows in enumerate(halves):
        micro = select_rows(batch, rows)
        with cap.domains(micro["domain_ids"], num_domains=K, sync=i == len(halves) - 1):
            (_losses(model, micro).mean() / len(halves)).backward()
        if i == 0:
            assert calls == []  # nothing reaches the consumer before the sync micro-batch
    cap.detach()
    model.zero_grad(set_to_none=True)
    assert sorted(calls) == sorted(want)  # exactly once per layer
    for name, grads in received.items():
        torch.testing.assert_close(grads, want[name], **TOL)


def test_factor_space_equals_k_backward_factor_grads(model):
    batch = domain_major_batch(num_domains=K, rows_per_domain=[1, 2, 2], ragged=True, seed=6)
    ref = per_domain_grads_kbackward(model, _domain_loss_fn(model, batch), K, space="factor")
    with DomainGradCapture(model, space="factor") as cap:
        with cap.domains(batch["domain_ids"], num_domains=K):
            _losses(model, batch).mean().backward()
        got = cap.factor_grads()
        names = {id(p): n for n, p in model.named_parameters()}
        assert sorted(names[id(p)] for p in got) == sorted(ref)
        for p, grads in got.items():
            torch.testing.assert_close(grads, ref[names[id(p)]], **TOL)
            torch.testing.assert_close(grads.mean(0), p.grad, **TOL)
        cap.reset()
        assert cap.factor_grads() == {}
    model.zero_grad(set_to_none=True)


@pytest.mark.filterwarnings("ignore:`lora_bias=True` was passed")  # PEFT: merging impossible; irrelevant here
def test_trainable_lora_bias_is_captured_in_factor_space_and_left_to_the_mean_in_full_space():
    net = tiny_lora_llama(lora_bias=True, seed=10)
    batch = domain_major_batch(num_domains=K, ragged=True, seed=10)
    bias_names = sorted(
        n for n, p in net.named_parameters() if p.requires_grad and n.endswith("lora_B.default.bias")
    )
    assert len(bias_names) == 7
    with DomainGradCapture(net) as full:
        assert sorted(n for n, _ in full.uncovered_parameters) == bias_names
    ref = per_domain_grads_kbackward(net, _domain_loss_fn(net, batch), K, space="factor")
    with DomainGradCapture(net, space="factor") as cap:
        assert cap.uncovered_parameters == []
        with cap.domains(batch["domain_ids"], num_domains=K):
            _losses(net, batch).mean().backward()
        by_name = {n: cap.factor_grads()[p] for n, p in net.named_parameters() if n in bias_names}
    for name in bias_names:
        torch.testing.assert_close(by_name[name], ref[name], **TOL)


def test_plain_linear_weight_and_bias():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    net[0].requires_grad_(False)
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    ids = torch.tensor([1, 0, 1, 2, 0, 2])

    def loss_k(rows):
        return net(x[rows]).pow(2).sum(-1).mean()

    ref_w = torch.stack([torch.autograd.grad(loss_k(ids == k), net[2].weight)[0] for k in range(3)])
    ref_b = torch.stack([torch.autograd.grad(loss_k(ids == k), net[2].bias)[0] for k in range(3)])
    with DomainGradCapture(net) as cap:
        assert [layer.name for layer in cap.layers] == ["2"] and not cap.layers[0].is_lora
        with cap.domains(ids, num_domains=3):
            per_row = net(x).pow(2).sum(-1).mean(-1)  # one forward of the whole (unsorted, unequal) batch
            torch.stack([per_row[ids == k].mean() for k in range(3)]).mean().backward()
        torch.testing.assert_close(cap.layers[0].domain_grads, ref_w, **TOL)
        torch.testing.assert_close(cap.layers[0].bias_domain_grads, ref_b, **TOL)


def test_consumer_gets_each_layer_and_nothing_is_stored(model):
    batch = domain_major_batch(num_domains=K, seed=7)
    shapes = {}
    with DomainGradCapture(model) as cap:
        cap.set_consumer(
            lambda layer, grads: shapes.__setitem__(layer.name, (tuple(grads.shape), grads.dtype))
        )
        with cap.domains(batch["domain_ids"], num_domains=K):
            _losses(model, batch).mean().backward()
        assert all(layer.domain_grads is None for layer in cap.layers)
        assert shapes == {layer.name: ((K, *layer.shape), torch.float64) for layer in cap.layers}
        with pytest.raises(ValueError, match="already has a consumer"):
            cap.set_consumer(lambda layer, grads: None)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_sums_are_written_into_the_consumers_buffer(model, micro_batches):
    """The buffer is asked for at the sync backward when no accumulation buffer holds the sums; the consumer then
    receives that very tensor, with the same numbers as a fresh one."""
    batch = domain_major_batch(num_domains=K, rows_per_domain=4, seed=12)
    want = _hook_full_grads(model, batch)
    buffers, received, asked = {}, {}, []

    def buffer(layer, shape, dtype, device):
        asked.append(layer.name)
        buffers[layer.name] = torch.full(shape, float("nan"), dtype=dtype, device=device)
        return buffers[layer.name]

    def consumer(layer, grads):
        received[layer.name] = (grads.data_ptr(), grads.clone())

    with DomainGradCapture(model) as cap:
        cap.set_consumer(consumer, buffer=buffer)
        halves = [torch.tensor([r for k in range(K) for r in range(4 * k + h, 4 * k + 4, micro_batches)])
                  for h in range(micro_batches)]  # fmt: skip
        for i, rows in enumerate(halves):
            micro = select_rows(batch, rows)
            with cap.domains(micro["domain_ids"], num_domains=K, sync=i == micro_batches - 1):
                (_losses(model, micro).mean() / micro_batches).backward()
    model.zero_grad(set_to_none=True)
    assert sorted(received) == sorted(want)
    # With accumulation the sums already live in the accumulation buffers: no buffer is asked for.
    assert sorted(asked) == (sorted(want) if micro_batches == 1 else [])
    for name, (ptr, grads) in received.items():
        torch.testing.assert_close(grads, want[name], **TOL)
        if micro_batches == 1:
            assert ptr == buffers[name].data_ptr()


def test_packed_batches_are_refused(model):
    batch = domain_major_batch(num_domains=K, seed=8)
    packed = batch["input_ids"].reshape(1, -1)  # one row holding every sequence
    with DomainGradCapture(model) as cap:
        with (
            pytest.raises(ValueError, match="Packed / padding-free"),
            cap.domains(batch["domain_ids"], num_domains=K),
        ):
            model(input_ids=packed)
        positions = torch.arange(10).repeat(6, 1)
        positions[0] = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
        with (
            pytest.raises(ValueError, match="restarts at 0"),
            cap.domains(batch["domain_ids"], num_domains=K, position_ids=positions),
        ):
            pass


def test_lora_dropout_is_refused_in_full_space_only():
    net = tiny_lora_llama(lora_dropout=0.1, seed=9)
    with pytest.raises(ValueError, match=r"lora_dropout=0\.1 .*undropped input"):
        DomainGradCapture(net)
    with pytest.warns(UserWarning, match="allow_dropout=True"):
        DomainGradCapture(net, allow_dropout=True).detach()
    DomainGradCapture(net, space="factor").detach()


def test_misuse_errors(model):
    with pytest.raises(ValueError, match="space must be one of"):
        DomainGradCapture(model, space="fulll")
    with pytest.raises(ValueError, match="no LoRA layers found in model"):
        DomainGradCapture(nn.Sequential(nn.Tanh()))
    with pytest.raises(ValueError, match="not LoRA Linear layers"):
        DomainGradCapture(model, targets=["nope"])
    cap = DomainGradCapture(model, targets=["base_model.model.model.layers.0.mlp.up_proj"])
    assert [layer.name for layer in cap.layers] == ["base_model.model.model.layers.0.mlp.up_proj"]
    assert len(cap.uncovered_parameters) == 26  # the other 13 layers' A and B
    ids = torch.tensor([0, 1, 2])
    with (
        cap.domains(ids, num_domains=K),
        pytest.raises(RuntimeError, match="cannot be nested"),
        cap.domains(ids, num_domains=K),
    ):
        pass
    with pytest.raises(ValueError, match="needs space='factor'"):
        cap.factor_grads()
    cap.detach()
    assert all(not layer.module._forward_hooks for layer in cap.layers)
    with pytest.raises(RuntimeError, match="detached"), cap.domains(ids, num_domains=K):
        pass


def test_module_called_twice_in_a_sync_backward_is_refused():
    lin = nn.Linear(2, 2)
    with DomainGradCapture(lin) as cap:
        cap.set_consumer(lambda layer, grads: None)
        with (
            pytest.raises(RuntimeError, match="called several times"),
            cap.domains(torch.tensor([0, 1]), num_domains=2),
        ):
            lin(lin(torch.randn(2, 2))).sum().backward()


def test_tied_trainable_weights_are_refused():
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    with pytest.raises(ValueError, match="tied weights"):
        DomainGradCapture(nn.ModuleDict({"emb": emb, "head": head}))
