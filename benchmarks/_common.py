"""Pieces shared by the step-time and memory benchmarks (``step_time.py``, ``gpu_step_time.py``,
``memory_0p5b.py``): the timed variants, the round-robin timer, peak-memory probes and the model shapes.

Imported as ``from _common import ...``: the scripts run as ``python benchmarks/<script>.py``, which puts this
folder on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

K = 4

#: Random-init model shapes (built from a config, never downloaded). ``qwen2.5-0.5b`` is Qwen2.5-0.5B's
#: architecture (494 M parameters, GQA with 2 KV heads, tied 151 936-token embeddings).
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {"arch": "qwen2", "hidden": 896, "intermediate": 4864, "layers": 24, "heads": 14,
                     "kv_heads": 2, "vocab": 151936},
    "llama-0.5b": {"arch": "llama", "hidden": 1024, "intermediate": 4096, "layers": 24, "heads": 16,
                   "kv_heads": 16, "vocab": 32000},
    "tiny": {"arch": "qwen2", "hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "kv_heads": 2,
             "vocab": 512},
}  # fmt: skip


def build_lora_model(shape: dict[str, Any], *, rank: int, dtype: Any, device: str, seed: int = 0) -> Any:
    """A random-init causal LM of ``shape`` with LoRA (r, α = 2r, no dropout, both factors random) on every
    linear layer but the LM head, on ``device`` in ``dtype`` (LoRA factors stay fp32, PEFT's default)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[shape["arch"]]
    config = config_cls(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    with torch.device(device):
        base = model_cls(config).to(dtype)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear",
                      init_lora_weights=False)  # fmt: skip
    model = get_peft_model(base, lora)
    model.train()
    return model


def losses_factory(batch: dict[str, Any]) -> Callable[[Any], Callable[..., Any]]:
    """``losses_of(net)`` → ``losses(rows=all, num_domains=K)``: per-domain token losses of ``net`` on rows of
    ``batch`` (one domain when ``num_domains`` is 1, for the K-separate-passes reference)."""
    import torch

    from iga.gradients import per_domain_token_loss

    def losses_of(net) -> Callable[..., Any]:
        def losses(rows: Any = slice(None), num_domains: int = K):
            out = net(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows])
            if num_domains == K:
                ids = batch["domain_ids"][rows]
            else:
                ids = torch.zeros(out.logits.shape[0], dtype=torch.long)
            return per_domain_token_loss(out.logits, batch["labels"][rows], ids, num_domains)

        return losses

    return losses_of


def variants(
    model, batch, losses_of, extra_iga: dict[str, dict[str, Any]] | None = None
) -> dict[str, Callable[[], None]]:
    """Each hooked variant gets its own copy of the model with its capture built once, so no variant runs with
    another's hooks attached and no timing includes building a capture. ``extra_iga``: more IGA steps, by name,
    with these ``create_iga_optimizer`` options (timed after ``iga_factor_step``)."""
    import copy

    import torch

    from iga import create_iga_optimizer
    from iga.gradients import DomainGradCapture
    from iga.gradients.reference import per_domain_grads_kbackward, per_domain_grads_shared_forward

    ids = batch["domain_ids"]
    rows = [torch.nonzero(ids == k).flatten() for k in range(K)]
    losses = losses_of(model)  # the un-hooked model: ERM and the references
    erm_opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def erm_step() -> None:
        erm_opt.zero_grad(set_to_none=True)
        losses().mean().backward()
        erm_opt.step()

    def iga(**options: Any) -> Callable[[], None]:
        net = copy.deepcopy(model)
        net_losses = losses_of(net)
        opt = create_iga_optimizer(net, lr=1e-4, **options)
        opt.num_domains = K
        if options.get("stat_tokens") == "logic":
            return _logic_step(net, opt, batch)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with opt.capture.domains(ids, num_domains=K):
                net_losses().mean().backward()
            opt.step()

        return step

    def hooks(space: str) -> Callable[[], None]:
        net = copy.deepcopy(model)
        net_losses = losses_of(net)
        cap = DomainGradCapture(net, space=space)
        if space == "full":
            cap.set_consumer(lambda layer, grads: None)

        def run() -> None:
            net.zero_grad(set_to_none=True)
            cap.reset()
            with cap.domains(ids, num_domains=K):
                net_losses().mean().backward()

        return run

    def kseparate(space: str) -> Callable[[], None]:
        return lambda: per_domain_grads_kbackward(model, lambda k: losses(rows[k], 1)[0], K, space=space)

    def kbackward(space: str) -> Callable[[], None]:
        return lambda: per_domain_grads_shared_forward(model, losses, space=space)

    return {
        "erm_step": erm_step,
        "iga_step": iga(),  # the default IGAConfig: full (coordinate) space
        "iga_factor_step": iga(mask_space="factor"),
        **{name: iga(**options) for name, options in (extra_iga or {}).items()},
        "hooks_full": hooks("full"),
        "kseparate_full": kseparate("full"),
        "kbackward_full": kbackward("full"),
        "hooks_factor": hooks("factor"),
        "kseparate_factor": kseparate("factor"),
        "kbackward_factor": kbackward("factor"),
    }


def _logic_step(net: Any, opt: Any, batch: dict[str, Any]) -> Callable[[], None]:
    """IGA with ``stat_tokens="logic"`` as the trainer runs it: the rows again with logic-only labels (here every
    other target token: the cost does not depend on which) as domains K..2K-1, one backward of the 2K losses."""
    from iga.gradients import per_domain_token_loss
    from iga.training.run import with_logic_rows

    logic = batch["labels"].clone()
    logic[:, 1::2] = -100
    doubled = with_logic_rows({**batch, "logic_labels": logic}, K)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with opt.capture.domains(doubled["domain_ids"], num_domains=2 * K):
            out = net(input_ids=doubled["input_ids"], attention_mask=doubled["attention_mask"])
            per_domain_token_loss(
                out.logits, doubled["labels"], doubled["domain_ids"], 2 * K
            ).mean().backward()
        opt.step()

    return step


def time_round_robin(
    variants: dict[str, Callable[[], None]],
    warmup: int,
    repeats: int,
    sync: Callable[[], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per run. The variants are interleaved (one run of each per round) so that
    background load, if any, hits all alike; CPU time counts only this process's threads. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each clock read, so asynchronous GPU work is inside the interval."""
    barrier = sync or (lambda: None)
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            barrier()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            barrier()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def counted_bytes(model) -> dict[str, int]:
    """Bytes of the extra tensors of the IGA path, from the shapes the consumer actually receives."""
    from iga import IGAConfig
    from iga.gradients import DomainGradCapture

    with DomainGradCapture(model) as cap:
        largest = max(K * m * n * 4 for m, n in (layer.shape for layer in cap.layers))
        all_layers = sum(K * m * n * 4 for m, n in (layer.shape for layer in cap.layers))
        factors = sum(p.numel() * p.element_size() for layer in cap.layers for p in layer.parameters())
        factor_domain_grads = K * factors  # factor space: K per-domain copies of every LoRA factor
    return {
        "largest_layer_domain_grads": largest,
        "consumer_temporaries_largest_layer": 4
        * largest
        // K,  # Ḡ, V, Ḡ², centring buffer (the rest in place)
        "stored_factor_grads": factors,
        "accumulation_buffers_all_layers": all_layers,
        # Full space, batched: the open stacks of same-shape layers' blocks (and the ones kept for reuse) are
        # bounded by this (IGAConfig.layer_group_max_bytes); a stack's working buffers add ~3/K of its size.
        "stack_bound": IGAConfig().layer_group_max_bytes,
        "factor_space_domain_grads": factor_domain_grads,
    }


def step_peak_bytes(fn: Callable[[], None]) -> int:
    """Peak of live tensor bytes during one run of ``fn``, above the level at its start (profiler timeline)."""
    import tempfile
    import warnings

    from torch.profiler import ProfilerActivity, profile

    fn()  # warm: optimizer state and lazily built objects exist before the measured run
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # "allocated before the profiling started": blocks that predate the step
        with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
        ) as prof:
            fn()
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path, encoding="utf-8") as f:
            _, sizes = json.load(f)
    totals = [sum(row) for row in sizes]
    return max(totals) - totals[0]


def gemm_count(model, tokens: int) -> dict[str, Any]:
    """GEMMs per step on the adapted layers, each ``m·n·tokens`` multiply-adds (a count, not a measurement).

    An ERM-LoRA step runs two per adapted layer: the forward ``W0·x`` and the input gradient ``W0ᵀ·δ`` (``W0`` is
    frozen, so its weight gradient is never formed). Full-space IGA adds the per-domain weight gradients
    ``Σ_k δ_kᵀ x_k``: one more of the same size per layer (K-batched). Factor-space IGA adds only LoRA-sized ones.
    If the adapted layers' GEMMs are a share ``s`` of an ERM step, full-space IGA costs at least ``1 + s/2``."""
    from iga.gradients import DomainGradCapture

    with DomainGradCapture(model) as cap:
        numel = sum(m * n for m, n in (layer.shape for layer in cap.layers))
        layers = len(cap.layers)
    return {
        "adapted_layers": layers,
        "tokens": tokens,
        "gemms_per_step": {"erm_step": 2 * layers, "iga_step": 3 * layers, "iga_factor_step": 2 * layers},
        "gflop_per_gemm_per_layer_set": 2 * tokens * numel / 1e9,
    }


def ratios(t: dict[str, float]) -> dict[str, float]:
    return {
        "iga_step/erm_step": t["iga_step"] / t["erm_step"],
        "iga_factor_step/erm_step": t["iga_factor_step"] / t["erm_step"],
        "hooks_full/erm_step (full-space floor)": t["hooks_full"] / t["erm_step"],
        "hooks_factor/erm_step": t["hooks_factor"] / t["erm_step"],
        "kseparate/hooks (full)": t["kseparate_full"] / t["hooks_full"],
        "kbackward/hooks (full)": t["kbackward_full"] / t["hooks_full"],
        "kseparate/hooks (factor)": t["kseparate_factor"] / t["hooks_factor"],
        "kbackward/hooks (factor)": t["kbackward_factor"] / t["hooks_factor"],
    } | {  # the extra IGA steps (--unbatched, --mask-variants)
        f"{name}/erm_step": t[name] / t["erm_step"]
        for name in t
        if name.startswith("iga_") and name != "iga_factor_step"
    }


def environment() -> dict[str, Any]:
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }


def preset_model_and_batch(preset: dict[str, int], num_domains: int) -> tuple[Any, dict[str, Any]]:
    """The benchmarks' Llama-style LoRA model (train mode, fp32) and domain-major batch for a size preset."""
    import torch

    from iga.gradients.testing import domain_major_batch, tiny_lora_llama

    model = tiny_lora_llama(
        hidden_size=preset["hidden"],
        intermediate_size=preset["intermediate"],
        num_layers=preset["layers"],
        vocab_size=preset["vocab"],
        rank=preset["rank"],
        lora_alpha=2 * preset["rank"],
        dtype=torch.float32,
        seed=0,
    )
    model.train()
    batch = domain_major_batch(
        num_domains=num_domains,
        rows_per_domain=preset["rows_per_domain"],
        seq_len=preset["seq"],
        vocab_size=preset["vocab"],
        prompt_len=preset["seq"] // 4,
        seed=0,
    )
    return model, batch
