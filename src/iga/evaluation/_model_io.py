"""Model-side helpers shared by teacher-forced state collection and generation (no heavy imports)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def padding(tokenizer: Any, side: str) -> Iterator[Any]:
    """Temporarily pad on ``side`` (with EOS as pad token if the tokenizer has none); restores both after."""
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                "tokenizer: has neither a pad token nor an EOS token to pad with; set tokenizer.pad_token"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = side
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None


@contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """``model.eval()`` for the block, then the previous train/eval mode again (callers may be mid-training)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def batches(items: Sequence[T], batch_size: int) -> list[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``batch_size`` elements."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be ≥ 1, got {batch_size}")
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def model_device(model: Any) -> Any:
    """The device of the model's first parameter (we never hard-code device strings)."""
    return next(model.parameters()).device
