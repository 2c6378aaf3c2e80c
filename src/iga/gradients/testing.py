"""Tiny, offline fixtures for the tests and benchmarks of the gradient core: a Llama-style causal LM built from a
config (no download) wrapped with PEFT LoRA, and domain-major batches in the Hugging Face label convention."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from iga.gradients.losses import IGNORE_INDEX, per_domain_token_loss


def tiny_lora_llama(
    *,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    num_layers: int = 1,
    num_heads: int = 4,
    vocab_size: int = 64,
    rank: int = 4,
    lora_alpha: int = 8,
    lora_dropout: float = 0.0,
    lora_bias: bool = False,
    target_modules: str | list[str] = "all-linear",
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> nn.Module:
    """A randomly initialised ``LlamaForCausalLM`` + LoRA (``init_lora_weights=False``, so ``B ≠ 0`` and the
    gradient of ``A`` is not trivially zero). Heavy imports happen here, not at module import.

    In float64 the RMSNorm layers are made to compute in float64 too (HF's compute in fp32), and attention
    defaults to ``sdpa`` (the eager kernel's softmax is fp32), so float64 identities hold to ~1e-15.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=256,
        attn_implementation=attn_implementation,
    )
    torch.manual_seed(seed)
    base = LlamaForCausalLM(config).to(dtype)
    if dtype == torch.float64:
        _rmsnorm_in_input_dtype(base)
    lora = LoraConfig(
        r=rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_bias=lora_bias,
        target_modules=target_modules,
        init_lora_weights=False,
    )
    return get_peft_model(base, lora)


def _rmsnorm_in_input_dtype(model: nn.Module) -> None:
    # HF's RMSNorm computes in fp32 by design; in a float64 model that rounds every activation to ~1e-7 and would
    # cap the float64 identities the tests pin (hooks vs K backwards) at fp32 precision.
    def exact(module: nn.Module, hidden: Tensor) -> Tensor:
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return module.weight * (hidden * torch.rsqrt(variance + module.variance_epsilon))

    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = exact.__get__(module)


def domain_major_batch(
    *,
    num_domains: int = 3,
    rows_per_domain: int | list[int] = 2,
    seq_len: int = 10,
    vocab_size: int = 64,
    prompt_len: int = 3,
    ragged: bool = False,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random token batch, rows sorted by domain, with ``labels`` = ids and ``-100`` on the prompt (and, with
    ``ragged=True``, on a random-length right padding so domains hold different numbers of supervised tokens).

    Returns ``input_ids``, ``attention_mask``, ``labels`` (all (B, T)) and ``domain_ids`` (B,).
    """
    counts = [rows_per_domain] * num_domains if isinstance(rows_per_domain, int) else list(rows_per_domain)
    if len(counts) != num_domains:
        raise ValueError(f"rows_per_domain has {len(counts)} entries for {num_domains} domains")
    gen = torch.Generator().manual_seed(seed)
    bsz = sum(counts)
    input_ids = torch.randint(0, vocab_size, (bsz, seq_len), generator=gen)
    attention_mask = torch.ones(bsz, seq_len, dtype=torch.long)
    if ragged:
        lengths = torch.randint(prompt_len + 2, seq_len + 1, (bsz,), generator=gen)
        attention_mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    labels[:, :prompt_len] = IGNORE_INDEX
    domain_ids = torch.repeat_interleave(torch.arange(num_domains), torch.tensor(counts))
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "domain_ids": domain_ids,
    }


def select_rows(batch: dict[str, Tensor], rows: Any) -> dict[str, Tensor]:
    """The sub-batch of the given rows (index tensor, list or slice) of every (B, ...) tensor."""
    return {k: v[rows] for k, v in batch.items()}


def domain_losses(model: nn.Module, batch: dict[str, Tensor], num_domains: int) -> Tensor:
    """The (K,) per-domain token losses of ``model`` on ``batch`` (its ``domain_ids`` in ``0..num_domains-1``)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], num_domains)


def reference_domain_grads(
    model: nn.Module, batch: dict[str, Tensor], num_domains: int, *, space: str = "full"
) -> dict[str, Tensor]:
    """Per-domain gradients from ``num_domains`` separate forward + backward passes, each on one domain's rows
    (:func:`iga.gradients.reference.per_domain_grads_kbackward`): the hook-free reference the tests compare with."""
    from iga.gradients.reference import per_domain_grads_kbackward

    def loss_k(k: int) -> Tensor:
        rows = torch.nonzero(batch["domain_ids"] == k).flatten()
        sub = select_rows(batch, rows)
        sub["domain_ids"] = torch.zeros(len(rows), dtype=torch.long)
        return domain_losses(model, sub, 1)[0]

    return per_domain_grads_kbackward(model, loss_k, num_domains, space=space)  # type: ignore[arg-type]


def random_logits_batch(
    seed: int, *, bsz: int = 6, seq: int = 7, vocab: int = 5, k: int = 3, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded (student logits, teacher logits, labels, domain ids) for loss tests: ~40 % of the labels masked, and
    every row keeps >= 1 supervised token after the shift, so every one of the ``k`` domains has one."""
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(bsz, seq, vocab, generator=g, dtype=dtype) * 3
    teacher = torch.randn(bsz, seq, vocab, generator=g, dtype=dtype) * 3
    labels = torch.randint(0, vocab, (bsz, seq), generator=g)
    labels[torch.rand(bsz, seq, generator=g) < 0.4] = -100
    labels[:, 1] = 0
    domains = torch.arange(bsz) % k
    return student, teacher, labels, domains
