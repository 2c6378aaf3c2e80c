"""Batched greedy generation from the student and scoring of the completions.

Decoder-only models are padded on the left for generation (so every row's next token follows its own last prompt
token); the tokenizer's padding side is set for the call and restored afterwards. A row stops at EOS or at the
first newline after ``The answer is …``, and only the completion (never the prompt) is returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from iga.evaluation._model_io import batches, eval_mode, model_device, padding
from iga.evaluation.scores import RecordScore, score_record
from iga.models.prompting import PromptFormat

#: The end of a completion: the answer line, up to (not including) its newline.
ANSWER_LINE = re.compile(r"The answer is[^\n]*\n")


def truncate_completion(text: str) -> str:
    """Cut ``text`` at the newline that ends its first ``The answer is …`` line.

    >>> truncate_completion("Step 1: 2 + 3 = 5.\\nThe answer is 5.\\nQ: next")
    'Step 1: 2 + 3 = 5.\\nThe answer is 5.'
    """
    match = ANSWER_LINE.search(text)
    return text[: match.end() - 1] if match else text


def _answer_line_stop(tokenizer: Any, prompt_len: int) -> Any:
    """Stopping criteria that end each row once its completion contains a finished answer line."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class AnswerLineStop(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if input_ids.shape[1] <= prompt_len:
                return done
            # Decoding every completion at every step would be quadratic; only a new newline can end the line.
            for i, token in enumerate(input_ids[:, -1].tolist()):
                if "\n" in tokenizer.decode([token]):
                    completion = tokenizer.decode(
                        input_ids[i, prompt_len:].tolist(), skip_special_tokens=True
                    )
                    done[i] = ANSWER_LINE.search(completion) is not None
            return done

    return StoppingCriteriaList([AnswerLineStop()])


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


def generate_completions(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping],
    *,
    fmt: PromptFormat = PromptFormat(),
    max_new_tokens: int = 256,
    batch_size: int = 16,
    progress: bool = True,
) -> list[str]:
    """Greedy completions of ``fmt.prompt(record)`` for every record (KV cache on), in record order.

    The model is put in eval mode for the call (its previous mode is restored); the device is the model's own.
    A progress bar over batches is shown on a terminal unless ``progress=False``.
    """
    import torch

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: must be ≥ 1, got {max_new_tokens}")
    device = model_device(model)
    completions: list[str] = []
    chunks = batches(records, batch_size)
    with torch.no_grad(), eval_mode(model), padding(tokenizer, "left"), _progress(progress) as bar:
        task = bar.add_task("generating", total=len(chunks))
        for chunk in chunks:
            enc = tokenizer([fmt.prompt(r) for r in chunk], padding=True, return_tensors="pt").to(device)
            prompt_len = enc["input_ids"].shape[1]
            eos = {"eos_token_id": tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else {}
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=_answer_line_stop(tokenizer, prompt_len),
                **eos,
            )
            texts = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
            completions += [truncate_completion(t) for t in texts]
            bar.advance(task)
    return completions


def evaluate_records(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping],
    *,
    fmt: PromptFormat = PromptFormat(),
    max_new_tokens: int = 256,
    batch_size: int = 16,
    progress: bool = True,
) -> list[RecordScore]:
    """Generate a completion for every record and score it in strict and flexible mode (see :mod:`.scores`)."""
    completions = generate_completions(
        model,
        tokenizer,
        records,
        fmt=fmt,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    return [score_record(c, r) for c, r in zip(completions, records, strict=True)]
