"""IGAOptimizer's batched path (stacks of same-shape layers) gives the numbers of the one-layer-at-a-time path
(``layer_group_size=1``), for every option, under the memory bound (float64, tiny Llama + LoRA)."""

from __future__ import annotations

import pytest
import torch

from iga import create_iga_optimizer
from iga.gradients import per_domain_token_loss
from iga.gradients.testing import domain_major_batch, select_rows, tiny_lora_llama

K = 3
TOL = {"rtol": 1e-9, "atol": 1e-12}


def _model():
    return tiny_lora_llama(num_layers=2, seed=0)


def _backward(opt, model, batch, micro_batches=1):
    rows = batch["domain_ids"].numel()
    for i in range(micro_batches):
        part = select_rows(batch, torch.arange(i, rows, micro_batches)) if micro_batches > 1 else batch
        with opt.capture.domains(part["domain_ids"], num_domains=K, sync=i == micro_batches - 1):
            out = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"])
            loss = per_domain_token_loss(out.logits, part["labels"], part["domain_ids"], K).mean()
            (loss / micro_batches).backward()


def _run(steps=2, micro_batches=1, **options):
    """Grads, metrics and weights after each of ``steps`` AdamW steps on fixed batches."""
    model = _model()
    opt = create_iga_optimizer(model, lr=1e-2, **options)
    trace = []
    for step in range(steps):
        batch = domain_major_batch(
            num_domains=K, rows_per_domain=2 * micro_batches, ragged=micro_batches == 1, seed=step
        )
        opt.zero_grad()
        _backward(opt, model, batch, micro_batches)
        opt.step()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        trace.append((grads, dict(opt.last_metrics), weights))
    return trace, opt


VARIANCE = {"mask_stat": "variance"}
OPTIONS = {
    "defaults": {},  # the sign statistic
    "sign_rescale": {"rescale": True, "svd_rank": 2},
    "variance": VARIANCE,
    "randomized_svd": {"svd_exact_max_numel": 0},
    "layer_norm_rescale": {**VARIANCE, "variance_norm": "layer", "rescale": True, "svd_rank": 2},
    "none_norm_no_projection": {**VARIANCE, "variance_norm": "none", "tau": 1e4, "svd_rank": None},
    "relative_rescale_lora_pro": {
        **VARIANCE,
        "rescale": True,
        "lora_map": "lora_pro",
        "svd_exact_max_numel": 0,
    },
    "ema": {**VARIANCE, "ema_beta": 0.9, "svd_exact_max_numel": 0},
    "domain_ema": {**VARIANCE, "domain_ema_beta": 0.5, "tau_warmup_steps": 1},
    "rank_above_min": {"svd_rank": 64},
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_batched_path_equals_one_layer_at_a_time(name):
    options = OPTIONS[name]
    batched, opt = _run(**options)
    alone, _ = _run(layer_group_size=1, **options)
    assert opt.config.layer_group_size > 1 and opt._stacks.held_bytes > 0  # the stacks were used
    for (grads, metrics, weights), (want_grads, want_metrics, want_weights) in zip(
        batched, alone, strict=True
    ):
        assert grads.keys() == want_grads.keys()
        for key in want_grads:
            torch.testing.assert_close(grads[key], want_grads[key], **TOL, msg=key)
        for key in want_weights:
            torch.testing.assert_close(weights[key], want_weights[key], **TOL, msg=key)
        assert metrics.keys() == want_metrics.keys()
        for key in want_metrics:
            assert metrics[key] == pytest.approx(want_metrics[key], rel=1e-9, abs=1e-12), key


def test_batched_path_equals_one_layer_at_a_time_with_accumulation_and_evictions():
    # A byte bound of three q/k/v/o blocks: stacks are evicted half full, and a (64 × 32) block is never stacked
    # with a (32 × 32) one.
    block = K * 32 * 32 * 8
    batched, _ = _run(micro_batches=2, layer_group_max_bytes=3 * block)
    alone, _ = _run(micro_batches=2, layer_group_size=1)
    for (grads, _, _), (want, _, _) in zip(batched, alone, strict=True):
        for key in want:
            torch.testing.assert_close(grads[key], want[key], **TOL, msg=key)


def test_stacks_respect_the_byte_bound_and_every_layer_is_processed_once():
    block = K * 32 * 32 * 8
    model = _model()
    opt = create_iga_optimizer(model, lr=0.0, layer_group_size=4, layer_group_max_bytes=3 * block)
    processed, held = [], []
    process = opt._stacks._process

    def spy(layers, stack):
        assert stack.shape[0] == len(layers) <= 4
        processed.extend(layer.name for layer in layers)
        process(layers, stack)

    consume = opt.capture.consumer

    def watch(layer, grads):
        consume(layer, grads)
        held.append(opt._stacks.held_bytes)

    opt._stacks._process = spy
    opt.capture._consumer = watch
    _backward(opt, model, domain_major_batch(num_domains=K, seed=0))
    opt.step()
    assert max(held) <= 3 * block
    stacked = [layer.name for layer in opt.capture.layers if layer.shape == (32, 32)]
    assert sorted(processed) == sorted(stacked)  # (64 × 32) blocks exceed half the bound: processed alone
    assert len(opt.last_metrics) > 0 and opt.last_metrics["mask_mean"] < 1


def test_non_finite_layers_in_a_stack_skip_the_step():
    model = _model()
    opt = create_iga_optimizer(model, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = domain_major_batch(num_domains=K, seed=0)
    with pytest.warns(RuntimeWarning, match="non-finite gradient statistics"):
        with opt.capture.domains(batch["domain_ids"], num_domains=K):
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], K).mean()
            (loss * float("nan")).backward()
        opt.step()
    assert opt.last_metrics["skipped"] == 1.0
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
