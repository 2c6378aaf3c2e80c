"""Isomer sets as Hugging Face ``datasets``: one row per isomer-set member, with its set and domain index.

Two shapes, same rows:

* **text** (``tokenize=False``): ``prompt`` / ``completion`` strings, TRL's prompt-completion format, so
  ``SFTTrainer`` tokenizes them and trains on the completion only;
* **tokenized** (``tokenize=True``): also ``input_ids`` and ``labels`` (-100 on the prompt), built exactly as
  ``iga train`` builds them (:meth:`iga.training.data.IsomerCollator.encode`), for ``transformers.Trainer``.

The prompt is rendered by :class:`~iga.models.prompting.PromptFormat` (``Q: ...\\nA:\\n``, base models) or, for
instruct models, by the tokenizer's own chat template (:class:`~iga.models.chat.ChatPromptFormat`): the text
``iga eval`` generates from, so training and evaluation prompts agree. ``prompt_format="auto"`` picks the chat
template exactly when the tokenizer has one. ``datasets`` is imported on call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

#: Domains of ``iga train``'s default ``train_domains``.
DEFAULT_TRAIN_DOMAINS = ("math", "medicine", "law", "science")
TEXT_COLUMNS = ("id", "instance_id", "domain", "domain_id", "prompt", "completion")
TOKEN_COLUMNS = ("input_ids", "labels")


def dataset_features(*, tokenized: bool) -> datasets.Features:
    """The fixed schema: strings, ``domain_id`` int64, and (tokenized) int32 sequences ``input_ids``/``labels``."""
    from datasets import Features, Sequence, Value

    spec: dict[str, Any] = {name: Value("string") for name in TEXT_COLUMNS}
    spec["domain_id"] = Value("int64")
    if tokenized:
        spec.update({name: Sequence(Value("int32")) for name in TOKEN_COLUMNS})
    return Features(spec)


def isomer_dataset(
    records: Iterable[Mapping[str, Any]],
    domains: Sequence[str] = DEFAULT_TRAIN_DOMAINS,
    *,
    tokenizer: Any = None,
    prompt_format: str | Any = "auto",
    tokenize: bool = False,
    max_length: int | None = None,
    cot_field: str = "gold_cot",
) -> datasets.Dataset:
    """A ``datasets.Dataset`` of complete isomer sets over ``domains`` (``domain_id`` = index in ``domains``).

    Args:
        records: isomer records (dicts with ``id``, ``instance_id``, ``domain``, ``question``, ``gold_cot``...), or
            the ``datasets.Dataset`` of :func:`iga.isomers.hf.load_split`. Records of other domains are skipped; a
            set missing one of ``domains`` is an error naming it.
        domains: the training domains, in the order that defines ``domain_id``.
        tokenizer: needed for ``tokenize=True`` and for chat prompts.
        prompt_format: ``"auto"`` | ``"plain"`` | ``"chat"``, or a format object with ``prompt(record)`` and
            ``completion(record, cot_field)``.
        tokenize: add ``input_ids`` / ``labels`` exactly as ``iga train`` tokenizes a record (prompt, completion,
            EOS; labels -100 on the prompt); requires ``max_length`` — a longer row is an error, never truncated.
        cot_field: ``gold_cot`` or ``teacher_cot`` (written by ``iga teach``).

    Example:
        >>> from iga.isomers import generate_records
        >>> ds = isomer_dataset(generate_records("tiny")["train"], ["math", "law"])
        >>> ds.column_names, ds[0]["domain"], ds[1]["domain_id"], ds.num_rows
        (['id', 'instance_id', 'domain', 'domain_id', 'prompt', 'completion'], 'math', 1, 66)
        >>> ds[0]["prompt"].startswith("Q: ")
        True
    """
    from datasets import Dataset

    from iga.training.data import IsomerCollator, group_isomer_sets

    fmt = _resolve_format(prompt_format, tokenizer)
    sets = group_isomer_sets(list(records), list(domains), source="records")
    encoder = None
    if tokenize:
        if tokenizer is None or max_length is None:
            raise ValueError("tokenize=True needs a tokenizer and max_length")
        encoder = IsomerCollator(tokenizer, max_length=max_length, fmt=fmt, cot_field=cot_field)
    rows = []
    for iso in sets:
        for k, record in enumerate(iso.members):
            row = {
                "id": str(record["id"]),
                "instance_id": str(iso.instance_id),
                "domain": str(record["domain"]),
                "domain_id": k,
                "prompt": fmt.prompt(record),
                "completion": fmt.completion(record, cot_field),
            }
            if encoder is not None:
                row["input_ids"], row["labels"] = encoder.encode(record)
            rows.append(row)
    return Dataset.from_list(rows, features=dataset_features(tokenized=tokenize))


def load_isomer_dataset(
    path_or_dir: str | os.PathLike,
    split: str = "train",
    domains: Sequence[str] = DEFAULT_TRAIN_DOMAINS,
    **kwargs: Any,
) -> datasets.Dataset:
    """:func:`isomer_dataset` of a built suite's split (``iga data build --out DIR``) or of one JSONL file.

    Keyword arguments are those of :func:`isomer_dataset`.
    """
    from pathlib import Path

    from iga.utils.io import read_jsonl

    path = Path(path_or_dir)
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"isomer split not found: {path} (build one with `iga data build --out DIR`)")
    return isomer_dataset(read_jsonl(path), domains, **kwargs)


def _resolve_format(prompt_format: str | Any, tokenizer: Any) -> Any:
    if isinstance(prompt_format, str):
        from iga.models.chat import make_prompt_format

        if prompt_format == "chat" and tokenizer is None:
            raise ValueError(
                "prompt_format='chat' needs the tokenizer whose chat template renders the prompt"
            )
        return make_prompt_format(prompt_format, tokenizer)
    if not (hasattr(prompt_format, "prompt") and hasattr(prompt_format, "completion")):
        raise TypeError(
            "prompt_format must be 'auto', 'plain', 'chat' or an object with prompt(record) and "
            f"completion(record, cot_field), got {type(prompt_format).__name__}"
        )
    return prompt_format
