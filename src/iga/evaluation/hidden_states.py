"""Pooled hidden states of a causal LM at the CoT anchors, under teacher forcing (the input of every LCS).

Each record is fed as ``fmt.text(record)`` (prompt + gold CoT, no EOS). Every anchor (a character offset into that
text, :meth:`PromptFormat.anchor_offsets`) is mapped to the token that contains the character, using the fast
tokenizer's offset mapping; the states at those tokens are mean-pooled per layer (layer 0 = embeddings). A record
without anchors (or without a gold CoT), or a tokenizer without offsets, falls back to the last prompt token;
fallbacks are counted because they make sets less comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from iga.evaluation._model_io import batches, eval_mode, model_device, padding
from iga.models.prompting import PromptFormat

Pooling = Literal["anchors", "last_prompt"]
POOLINGS = ("anchors", "last_prompt")


class AnchorStates(dict[int, np.ndarray]):
    """``{layer: N×D float32 array}`` (row i = ``records[i]``) plus how the rows were obtained.

    ``n_fallback``/``fallback_ids``: records pooled at the last prompt token although ``pooling="anchors"``.
    """

    def __init__(self, states: Mapping[int, np.ndarray], *, pooling: str, fallback_ids: list[str]) -> None:
        super().__init__(states)
        self.pooling = pooling
        self.fallback_ids = fallback_ids

    @property
    def n_fallback(self) -> int:
        return len(self.fallback_ids)


def token_index_at(starts: np.ndarray, char: int) -> int:
    """Index (into ``starts``, the sorted start offsets of a sequence's text tokens) of the token containing
    ``char``; a character no token covers (e.g. whitespace a pre-tokenizer dropped) maps to the token before it.

    >>> token_index_at(np.array([0, 4, 6]), 5)
    1
    """
    return max(int(np.searchsorted(starts, char, side="right")) - 1, 0)


def _has_cot(record: Mapping) -> bool:
    return bool(record.get("gold_cot"))


def _check_anchors(record: Mapping, i: int) -> None:
    if not _has_cot(record):  # anchors are ignored without a CoT to point into
        return
    n = len(record["gold_cot"])
    bad = [a for a in record.get("anchors") or [] if not 0 <= int(a) <= n]
    if bad:
        raise ValueError(
            f"records[{i}] (id {record.get('id')!r}): anchors: offset {bad[0]} lies outside gold_cot (0..{n})"
        )


def _positions(
    offsets: np.ndarray, text_mask: np.ndarray, anchors: Sequence[int], prompt_len: int, text_len: int
) -> tuple[list[int], bool]:
    """Token positions to pool for one sequence, and whether the last-prompt fallback was used."""
    index = np.flatnonzero(text_mask)
    starts, ends = offsets[index, 0], offsets[index, 1]
    covered = int(ends[-1]) if len(index) else 0
    # Anchors past the last kept character were cut off by truncation; an anchor at the very end of the text
    # (offset == len(text)) still belongs to the final token.
    kept = [a for a in anchors if a < covered or (covered == text_len and a <= text_len)]
    if kept:
        return sorted({int(index[token_index_at(starts, a)]) for a in kept}), False
    return [int(index[token_index_at(starts, max(prompt_len - 1, 0))])], True


def _resolve_layers(layers: str | Sequence[int], n_states: int) -> list[int]:
    if layers == "all":
        return list(range(n_states))
    if isinstance(layers, str):
        raise ValueError(f"layers: expected 'all' or a list of layer indices, got {layers!r}")
    out = []
    for layer in layers:
        if not -n_states <= int(layer) < n_states:
            raise ValueError(
                f"layers: {layer} out of range; the model has layers 0..{n_states - 1} (0 = embeddings)"
            )
        out.append(int(layer) % n_states)
    return sorted(set(out))


def tokenize_with_anchors(
    tokenizer: Any,
    records: Sequence[Mapping],
    fmt: PromptFormat = PromptFormat(),
    pooling: Pooling = "anchors",
    max_length: int | None = None,
) -> tuple[dict[str, Any], list[list[int]], list[bool]]:
    """Tokenise ``records`` as one batch (in the tokenizer's padding side; :func:`collect_anchor_states` uses right
    padding) and find, per record, the token positions to pool and whether it fell back to the last prompt token.

    Returns ``(model inputs as torch tensors, positions, fallback flags)``.
    """
    for i, record in enumerate(records):
        _check_anchors(record, i)
    texts = [fmt.text(r) if _has_cot(r) else fmt.prompt(r) for r in records]
    prompt_lens = [len(fmt.prompt(r)) for r in records]
    truncation = {"truncation": True, "max_length": max_length} if max_length else {}
    if not getattr(tokenizer, "is_fast", False):
        # Without offsets the prompt's own token count locates its last token (exact when tokenisation of the
        # prompt is a prefix of the full text's, which holds for the usual "…A: " prompt end).
        enc = tokenizer(texts, padding=True, return_tensors="pt", **truncation)
        n_prompt = [len(tokenizer(fmt.prompt(r), **truncation)["input_ids"]) for r in records]
        real = [np.flatnonzero(row) for row in enc["attention_mask"].numpy()]  # handles either padding side
        positions = [
            [int(idx[min(max(n - 1, 0), len(idx) - 1)])] for idx, n in zip(real, n_prompt, strict=True)
        ]
        return dict(enc), positions, [pooling == "anchors"] * len(records)
    enc = tokenizer(
        texts,
        padding=True,
        return_tensors="pt",
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        **truncation,
    )
    offsets = enc.pop("offset_mapping").numpy()
    text_mask = (enc["attention_mask"] == 1).numpy() & (enc.pop("special_tokens_mask") == 0).numpy()
    positions, fallbacks = [], []
    for i, record in enumerate(records):
        anchors = fmt.anchor_offsets(record) if pooling == "anchors" and _has_cot(record) else []
        pos, fell_back = _positions(offsets[i], text_mask[i], anchors, prompt_lens[i], len(texts[i]))
        positions.append(pos)
        fallbacks.append(fell_back and pooling == "anchors")
    return dict(enc), positions, fallbacks


def collect_anchor_states(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping],
    *,
    fmt: PromptFormat = PromptFormat(),
    layers: str | Sequence[int] = "all",
    batch_size: int = 16,
    pooling: Pooling = "anchors",
    max_length: int | None = None,
) -> AnchorStates:
    """Mean-pooled hidden states per layer, one row per record, as float32 numpy (``{layer: N×D}``).

    Works for plain and PEFT-wrapped HF causal LMs on any device (taken from the model's parameters); runs under
    ``torch.no_grad()`` in eval mode (the previous mode is restored) and in the model's own dtype.
    ``max_length`` truncates long texts (anchors cut off are dropped). Batching does not change the result
    beyond float rounding: padding is on the right, where causal attention never looks.
    """
    import torch

    if pooling not in POOLINGS:
        raise ValueError(f"pooling: unknown {pooling!r}; allowed: {', '.join(POOLINGS)}")
    if not records:
        raise ValueError("records: nothing to encode")
    device = model_device(model)
    chunks: dict[int, list[np.ndarray]] = {}
    fallback_ids: list[str] = []
    resolved: list[int] | None = None
    with torch.no_grad(), eval_mode(model), padding(tokenizer, "right"):
        for batch in batches(records, batch_size):
            inputs, positions, fallbacks = tokenize_with_anchors(tokenizer, batch, fmt, pooling, max_length)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            out = model(**inputs, output_hidden_states=True, use_cache=False)
            if resolved is None:
                resolved = _resolve_layers(layers, len(out.hidden_states))
            weights = torch.zeros(inputs["input_ids"].shape, dtype=torch.float32, device=device)
            for i, pos in enumerate(positions):
                weights[i, pos] = 1.0 / len(pos)
            for layer in resolved:
                pooled = torch.einsum("bt,btd->bd", weights, out.hidden_states[layer].float())
                chunks.setdefault(layer, []).append(pooled.cpu().numpy())
            fallback_ids += [str(r.get("id", "")) for r, fb in zip(batch, fallbacks, strict=True) if fb]
    states = {layer: np.concatenate(parts).astype(np.float32) for layer, parts in chunks.items()}
    return AnchorStates(states, pooling=pooling, fallback_ids=fallback_ids)
