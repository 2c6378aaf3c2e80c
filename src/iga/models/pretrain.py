"""``iga pretrain``: train a built-in student's base once, cached by a hash of everything that shapes it.

The base plays the role of a real pretrained LM: it has read text that covers the vocabulary of every domain,
held-out ones included (:mod:`iga.models.corpus` says exactly what), but it has never seen an isomer-task
problem or a chain-of-thought. Distillation then adapts it with LoRA; since LoRA leaves the embeddings frozen,
held-out words must already have trained embeddings here, as they would in a real pretrained model.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json, stable_hash

BASE_MARKER = "base.json"


@dataclass(frozen=True)
class PretrainConfig:
    student: str = "small"
    vocab_size: int = 2048
    steps: int = 300
    batch_size: int = 32
    seq_len: int = 96
    lr: float = 3e-3
    warmup_steps: int = 20
    seed: int = 0
    split_digits: bool = False

    def key(self, corpus_fingerprint: str) -> str:
        config = asdict(self)
        if not config[
            "split_digits"
        ]:  # added later: without it, bases cached before the option keep their key
            del config["split_digits"]
        return stable_hash({"config": config, "corpus": corpus_fingerprint})


#: Pretraining budgets per built-in student (vocabulary, steps, batch) — sized for 2 CPU cores.
PRETRAIN_PRESETS: dict[str, dict[str, int]] = {
    "micro": {"vocab_size": 512, "steps": 30, "batch_size": 8, "seq_len": 64},
    "tiny": {"vocab_size": 1024, "steps": 150, "batch_size": 32, "seq_len": 96},
    "small": {"vocab_size": 2048, "steps": 400, "batch_size": 32, "seq_len": 96},
    "medium": {"vocab_size": 2048, "steps": 300, "batch_size": 32, "seq_len": 96},
}


def pretrain_config(student: str, *, seed: int = 0, steps: int | None = None) -> PretrainConfig:
    from iga.models.students import student_spec

    student_spec(student)  # validates the name
    preset = dict(PRETRAIN_PRESETS.get(student, PRETRAIN_PRESETS["small"]))
    if steps is not None:
        preset["steps"] = steps
    return PretrainConfig(student=student, seed=seed, **preset)


def _pack(token_lists: Sequence[list[int]], seq_len: int, eos_id: int) -> list[list[int]]:
    # Pretraining (unlike distillation) packs sentences into fixed-length blocks: no padding, every token counts.
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
    n = len(stream) // seq_len
    return [stream[i * seq_len : (i + 1) * seq_len] for i in range(n)]


def pretrain_base(
    texts: Sequence[str],
    tokenizer_texts: Sequence[str],
    out_dir: str | os.PathLike,
    cfg: PretrainConfig,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Train tokenizer + base on ``texts`` and save both to ``out_dir`` (a HF checkpoint folder)."""
    import torch

    from iga.models.students import build_student, spec_dict
    from iga.models.tokenizer import train_bpe_tokenizer

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    tok = train_bpe_tokenizer(tokenizer_texts, vocab_size=cfg.vocab_size, split_digits=cfg.split_digits)
    model = build_student(cfg.student, tok, seed=cfg.seed)
    blocks = _pack(
        [tok(t, add_special_tokens=False)["input_ids"] for t in texts], cfg.seq_len, tok.eos_token_id
    )
    if len(blocks) < cfg.batch_size:
        raise ValueError(f"pretraining corpus too small: {len(blocks)} blocks of {cfg.seq_len} tokens")
    data = torch.tensor(blocks, dtype=torch.long)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses = []
    for step in range(cfg.steps):
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
        batch = data[idx]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, cfg.steps, loss.item())
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    tail = losses[-min(20, len(losses)) :]
    atomic_write_json(
        out_dir / BASE_MARKER,
        {
            "pretrain_config": asdict(cfg),
            "student_spec": spec_dict(cfg.student),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "corpus_blocks": len(blocks),
            "final_loss": sum(tail) / len(tail),
            "first_loss": losses[0],
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
    return out_dir


def load_base(base_dir: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) of a pretrained base folder."""
    from iga.models.students import load_causal_lm
    from iga.models.tokenizer import load_tokenizer

    base_dir = Path(base_dir)
    if not (base_dir / BASE_MARKER).exists() and not (base_dir / "config.json").exists():
        raise FileNotFoundError(f"{base_dir} is not a pretrained base (run `iga pretrain` first)")
    return load_causal_lm(base_dir), load_tokenizer(base_dir)


DEFAULT_CACHE = Path(os.environ.get("IGA_CACHE", ".iga_cache")) / "bases"


def _cache_path(cfg: PretrainConfig, corpus: Any, cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir or DEFAULT_CACHE) / f"{cfg.student}-{cfg.key(corpus.fingerprint)}"


def base_path(
    cfg: PretrainConfig, *, cache_dir: str | os.PathLike | None = None, domains_dir: str | None = None
) -> Path:
    """Where :func:`ensure_base` keeps the base for ``cfg`` (whether or not it is built yet)."""
    from iga.models.corpus import build_corpus

    return _cache_path(cfg, build_corpus(seed=cfg.seed, domains_dir=domains_dir), cache_dir)


def ensure_base(
    cfg: PretrainConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    domains_dir: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Path, bool]:
    """The cached base for ``cfg`` (built on first use). Returns ``(path, built_now)``.

    The cache key hashes the pretraining config and the corpus fingerprint, so a change to either (a new
    domain file, another seed) gives a new base instead of silently reusing a stale one.
    """
    from iga.models.corpus import build_corpus

    corpus = build_corpus(seed=cfg.seed, domains_dir=domains_dir)
    path = _cache_path(cfg, corpus, cache_dir)
    if (path / BASE_MARKER).exists():
        return path, False
    tmp = path.with_name(path.name + ".partial")
    pretrain_base(corpus.documents, corpus.tokenizer_texts, tmp, cfg, progress=progress)
    if path.exists():  # a concurrent builder finished first; keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, path)
    return path, True
