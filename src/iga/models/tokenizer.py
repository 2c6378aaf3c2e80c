"""A byte-level BPE tokenizer trained here (offline), saved as a standard Hugging Face tokenizer.

Byte-level BPE never produces an unknown token, so held-out domains whose words the tokenizer has not seen are
still encodable (they just split into more pieces) — the same situation a real pretrained tokenizer is in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}


def train_bpe_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 2048, min_frequency: int = 2, split_digits: bool = False
) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a HF fast tokenizer.

    ``split_digits`` makes every digit its own token (as Llama and Qwen do). Without it BPE merges frequent
    numbers (`` 18`` is one token, `` 68`` two, ``17`` at the start of a line two others), so copying a number from
    the question or adding two numbers means something different for every number — hard for a small student.

    >>> tok = train_bpe_tokenizer(["Step 1: 2 + 3 = 5.", "The answer is 5."] * 20, vocab_size=300)
    >>> tok.decode(tok("The answer is 5.")["input_ids"])
    'The answer is 5.'
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(
            f"vocab_size must be >= 300 (256 byte symbols + specials + merges), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer = normalizers.NFKC()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Load a local HF tokenizer (never from a hub); adds a pad token if the tokenizer has none."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer path does not exist: {path}")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:
        # Causal LMs often ship without a pad token; EOS is the usual stand-in (masked out of the loss anyway).
        tok.pad_token = tok.eos_token
    return tok
