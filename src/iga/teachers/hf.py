"""A local Hugging Face causal LM as CoT teacher: batched greedy decoding or n samples at temperature T.

Decoding reuses the evaluator's machinery (:mod:`iga.evaluation.generation`): left padding, a stop at the end of
the ``The answer is …`` line, and completions truncated right after it. Greedy decoding *is*
:func:`~iga.evaluation.generation.generate_completions`; sampling adds ``num_return_sequences`` and a seeded
generator. The answers are checked by :func:`iga.teachers.dataset.select_cots` (rejection sampling).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iga.evaluation._model_io import batches, eval_mode, model_device, padding
from iga.evaluation.generation import _answer_line_stop, _progress, generate_completions, truncate_completion
from iga.models.prompting import PromptFormat
from iga.utils.io import sha256_file, stable_hash


@dataclass(frozen=True)
class SamplingConfig:
    """How the teacher decodes. ``temperature == 0`` is greedy (one sample); ``> 0`` draws ``samples`` per prompt.

    Sampling is pure temperature sampling (``top_k=0``, ``top_p=1``, whatever the checkpoint's generation config
    says) so that T means what it says. ``batch_size`` counts prompts: a batch generates ``batch_size × samples``
    rows. The same seed, batch size and records give the same samples.

    >>> SamplingConfig(samples=4, temperature=0.8).decoding
    'sample'
    """

    samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 256
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer ≥ 1, got {value!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature: must be ≥ 0 (0 = greedy), got {self.temperature!r}")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(
                f"samples={self.samples} needs temperature > 0: greedy decoding (temperature 0) would return the "
                "same completion every time"
            )

    @property
    def decoding(self) -> str:
        return "greedy" if self.temperature == 0 else "sample"


def _batch_seed(seed: int, index: int) -> int:
    # One seed per batch, derived by hashing, so batch i's samples never depend on how many tokens batch i-1 drew.
    return int(stable_hash([seed, index]), 16)


def generate_samples(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping],
    *,
    sampling: SamplingConfig = SamplingConfig(),
    fmt: PromptFormat = PromptFormat(),
    progress: bool = True,
) -> list[list[str]]:
    """``sampling.samples`` completions of ``fmt.prompt(record)`` per record (in record order), each truncated
    after its answer line. The global torch RNG is left as it was.
    """
    if sampling.decoding == "greedy":
        completions = generate_completions(
            model,
            tokenizer,
            records,
            fmt=fmt,
            max_new_tokens=sampling.max_new_tokens,
            batch_size=sampling.batch_size,
            progress=progress,
        )
        return [[c] for c in completions]
    import torch

    device = model_device(model)
    n = sampling.samples
    out: list[list[str]] = []
    chunks = batches(records, sampling.batch_size)
    rng_devices = [device] if device.type == "cuda" else []
    with (
        torch.no_grad(),
        eval_mode(model),
        padding(tokenizer, "left"),
        torch.random.fork_rng(devices=rng_devices),
        _progress(progress) as bar,
    ):
        task = bar.add_task("teacher sampling", total=len(chunks))
        for index, chunk in enumerate(chunks):
            torch.manual_seed(_batch_seed(sampling.seed, index))
            enc = tokenizer([fmt.prompt(r) for r in chunk], padding=True, return_tensors="pt").to(device)
            prompt_len = enc["input_ids"].shape[1]
            eos = {"eos_token_id": tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else {}
            generated = model.generate(
                **enc,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=True,
                temperature=sampling.temperature,
                top_k=0,
                top_p=1.0,
                num_return_sequences=n,
                num_beams=1,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=_answer_line_stop(tokenizer, prompt_len),
                **eos,
            )
            # generate() returns the n samples of prompt j as rows j·n … j·n + n − 1.
            texts = tokenizer.batch_decode(generated[:, prompt_len:], skip_special_tokens=True)
            out += [[truncate_completion(t) for t in texts[j * n : (j + 1) * n]] for j in range(len(chunk))]
            bar.advance(task)
    return out


@dataclass
class HFTeacher:
    """A causal LM in memory that proposes CoTs; build it from a checkpoint folder with :meth:`load`.

    ``source`` (the checkpoint path) goes into every output record's ``cot_source``; ``info`` into the manifest.
    """

    model: Any
    tokenizer: Any
    source: str
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    fmt: PromptFormat = field(default_factory=PromptFormat)
    info: dict = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        sampling: SamplingConfig | None = None,
        fmt: PromptFormat | None = None,
        trust_remote_code: bool = False,
        dtype: Any = None,
        device: str | None = None,
    ) -> HFTeacher:
        """Model and tokenizer from a local checkpoint folder, on ``device`` (default: CUDA if available)."""
        import torch

        from iga.models.students import load_causal_lm
        from iga.models.tokenizer import load_tokenizer

        path = Path(path)
        model = load_causal_lm(path, trust_remote_code=trust_remote_code, dtype=dtype)
        try:
            tokenizer = load_tokenizer(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"teacher {path}: no usable tokenizer in the checkpoint folder ({e})") from None
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        info = {
            "config_sha256": sha256_file(path / "config.json"),
            "model_type": model.config.model_type,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "device": str(model_device(model)),
        }
        return cls(
            model, tokenizer, str(path.resolve()), sampling or SamplingConfig(), fmt or PromptFormat(), info
        )

    def describe(self) -> dict:
        return {"kind": "hf", "path": self.source, **self.info}

    def settings(self) -> dict:
        extra = {"top_k": 0, "top_p": 1.0} if self.sampling.decoding == "sample" else {}
        return {
            "decoding": self.sampling.decoding,
            **asdict(self.sampling),
            **extra,
            "prompt_template": self.fmt.template,
        }

    def propose(self, records: Sequence[Mapping], *, progress: bool = True) -> list[list[str]]:
        return generate_samples(
            self.model, self.tokenizer, records, sampling=self.sampling, fmt=self.fmt, progress=progress
        )
