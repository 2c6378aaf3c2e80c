"""The micro regime's skill base: a ~1 M-parameter student trained from scratch, once, with full weights.

It plays the part of a pretrained model in the paper's setting (a skill base, then LoRA per algorithm and seed):

* **Skill rows** (``skill_share`` of each batch): micro-skeleton problems in the neutral ``symbolic`` wording,
  ``Q: … A:`` then the chain of thought; the loss is on the chain of thought, the answer line and EOS.
* **Narrative rows** (the rest): plain text in **every** domain — training, held-out and stress — that states
  premises and their consequences (``Skeleton.narrative``: "The team scores 5 points. So the team has 12
  points."); no question, no chain of thought, no answer line; the loss is on every token.

So after the base, every domain's words mean something (held-out ones included, as in a real pretrained model),
the skills exist in one neutral wording, and no domain's question → CoT format has been seen: that is what the
LoRA runs learn, on the training domains only. Problems are fresh every step, drawn from ``HashRng(seed, step,
row)``: the base is a pure function of its config and the domain files, and is cached under a hash of both
(:mod:`iga.models.micro_base_cache`: the cache folder, the shipped copies, ``ensure_micro_base``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iga.models.micro_rows import MicroRows
from iga.utils.io import atomic_write_json

BASE_MARKER = "base.json"


@dataclass(frozen=True)
class MicroBaseConfig:
    """Everything that shapes a micro base (all of it goes into the cache key)."""

    student: str = "tiny"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    skill_share: float = 0.75
    # M01 arith, M02 modus ponens, M03 order, M04 state. Measured (docs/student-recipes.md): M01 and M03 are
    # learned in every recipe; M02's rule look-up and M04's state look-up are learned abruptly, and only with many
    # rows - hence a first phase that leans on M02 (with copy drills, below) and a second that leans on M04.
    skeleton_weights: tuple[float, ...] = (1.0, 4.0, 0.5, 3.0)
    skill_domain: str = "symbolic"
    max_int: int = 99
    seed: int = 0
    # Fraction of the post-warm-up steps held at the peak lr before the cosine decay starts (0: cosine at once).
    hold_fraction: float = 0.3
    # A second phase: from ``late_start`` (a fraction of ``steps``) on, rows are drawn with ``late_weights``
    # (None: one phase).
    late_weights: tuple[float, ...] | None = (1.0, 1.5, 0.8, 4.0)
    late_start: float = 0.55
    # The words that fill the neutral problems' slots (atoms, things, kinds): "skill_domain" (its own letters
    # P..Z) or "all_domains" (the union of every domain's pool for that slot). With letters only, the base learns
    # to copy eight tokens, and LoRA does not carry the look-up to worded domains (docs/student-recipes.md); the
    # default is a curriculum: letters while the look-ups form, then every domain's words.
    skill_words: str = "skill_domain"
    # The second phase's words (None: as ``skill_words``).
    late_skill_words: str | None = "all_domains"
    # Share of rows that are a copy drill: 6-12 words from every domain's pools, " . ", then the same words again
    # (loss on the repeat). Only a look-up of what followed the same word earlier predicts the repeat - the
    # induction copy that M02's rule look-up needs, on words rather than on eight letters.
    # Without drills no base with words learned M02; with them M02 is learned within 1 200-2 100 steps.
    drill_share: float = 0.15
    # The second phase's drill share (None: as ``drill_share``).
    late_drill_share: float | None = 0.05
    # Share of the drills whose repeat runs backwards (``w1 … wn . wn … w1``: each token is the one that *preceded*
    # the last one written). Tried for M04, whose first CoT line copies backwards ("5 ys" → "ys 5"): it did not
    # help (docs/student-recipes.md), so it is off.
    drill_reverse_share: float = 0.0
    # Share of rows that are an arithmetic drill: 6-10 facts ``a + b = c .`` / ``a - b = c .`` drawn uniformly over
    # M01's table (a in 0..CAP, b in its training range), the loss on each ``c``. M01's skill rows reach a first
    # operand of 20 or more in one step of eight, so those facts are rare, and they are the ones the LoRA runs got
    # wrong (docs/student-recipes.md, "Why M01 misses"); the drill covers the whole table.
    fact_drill_share: float = 0.0
    # The second phase's arithmetic-drill share (None: as ``fact_drill_share``). Measured with 0.1: M04, learned
    # late in the second phase, did not form by step 3 000 with drills in both phases (.45 with words, against .97
    # without drills) nor with 0.02 in the second (.49), so both stay off by default.
    late_fact_drill_share: float | None = None
    # Which rows the arithmetic drills replace: "any" (a share of all rows, drawn before the skeleton) or "m01" (a
    # share of M01's skill rows only, so every other skeleton's rows are those of the base without drills).
    # Measured with share 0.5: M04 still did not form (.30 with words): the first base's M04 is a fragile
    # transition that a change of the trajectory alone can lose (docs/student-recipes.md); hence the polish below.
    fact_drill_rows: str = "any"
    # A polish phase on top of the finished base (0: none): ``polish_steps`` more steps from its weights with a
    # fresh optimizer at a constant ``polish_lr`` (after a 20-step warm-up), on the second phase's rows with
    # ``polish_fact_drill_share`` of them arithmetic drills. The base's own trajectory (and the state look-up that
    # forms late in it) is left as it is; the drills come after it. Measured (docs/student-recipes.md, "A polish
    # phase"): 400 steps lift the base's M01 and keep its M04, and ERM then meets the 95 % bar on every skeleton.
    # The base below the polish (:func:`parent_config`) is cached, and shipped, on its own.
    polish_steps: int = 400
    polish_lr: float = 2e-4
    polish_fact_drill_share: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.skill_share <= 1.0:
            raise ValueError(f"skill_share: expected a number in [0, 1], got {self.skill_share!r}")
        if (
            len(self.skeleton_weights) != 4
            or min(self.skeleton_weights) < 0
            or not sum(self.skeleton_weights)
        ):
            raise ValueError(
                f"skeleton_weights: expected 4 non-negative weights (M01-M04), not all 0, got {self.skeleton_weights!r}"
            )
        for name in ("skill_words", "late_skill_words"):
            value = getattr(self, name)
            if value not in ("skill_domain", "all_domains") and not (
                name == "late_skill_words" and value is None
            ):
                raise ValueError(f"{name}: expected 'skill_domain' or 'all_domains', got {value!r}")
        if self.fact_drill_rows not in ("any", "m01"):
            raise ValueError(f"fact_drill_rows: expected 'any' or 'm01', got {self.fact_drill_rows!r}")
        for name in (
            "hold_fraction",
            "late_start",
            "drill_share",
            "late_drill_share",
            "drill_reverse_share",
            "fact_drill_share",
            "late_fact_drill_share",
            "polish_fact_drill_share",
        ):
            if getattr(self, name) is None and name in ("late_drill_share", "late_fact_drill_share"):
                continue
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {getattr(self, name)!r}")
        if self.late_weights is not None and (
            len(self.late_weights) != 4 or min(self.late_weights) < 0 or not sum(self.late_weights)
        ):
            raise ValueError(
                f"late_weights: expected None or 4 non-negative weights (M01-M04), not all 0, got {self.late_weights!r}"
            )
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.polish_steps < 0:
            raise ValueError(f"polish_steps: expected an integer >= 0, got {self.polish_steps!r}")
        if not self.polish_lr > 0:
            raise ValueError(f"polish_lr: expected a positive number, got {self.polish_lr!r}")


def parent_config(cfg: MicroBaseConfig) -> MicroBaseConfig:
    """The base that ``cfg``'s polish phase starts from: ``cfg`` without the polish."""
    from dataclasses import replace

    default = MicroBaseConfig()
    return replace(
        cfg,
        polish_steps=0,
        polish_lr=default.polish_lr,
        polish_fact_drill_share=default.polish_fact_drill_share,
    )


def _lr_factor(step: int, cfg: MicroBaseConfig) -> float:
    """Linear warm-up, the peak held for ``hold_fraction`` of the rest, then cosine decay to 10 % of the peak."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if frac < cfg.hold_fraction:
        return 1.0
    frac = (frac - cfg.hold_fraction) / max(1e-9, 1.0 - cfg.hold_fraction)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _at_least_float32(logits: Any) -> Any:
    """Half-precision logits in float32 for the loss; float32 and float64 as they are."""
    import torch

    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _backward_by_length(model: Any, batch: Mapping[str, Any], chunks: int = 2) -> float:
    """Backpropagate the batch's mean next-token cross-entropy over its labelled positions in ``chunks`` groups of
    rows sorted by length; return the loss. The LM head runs on the labelled positions only (~40 % of them: not the
    prompt, not the padding).

    Each group is cut to its own longest row, so short rows no longer pay for the batch's longest one (a quarter of
    a batch's positions are padding). The rows are right-padded and attention is causal, so a real position never
    sees the cut padding; each group's summed token loss is divided by the whole batch's label count, so the
    gradient is the one-batch gradient (tested in float64)."""
    import torch.nn.functional as F

    lengths = batch["attention_mask"].sum(1)
    n_labels = (batch["labels"][:, 1:] != -100).sum()
    total = 0.0
    for rows in lengths.argsort().chunk(chunks):
        width = int(lengths[rows].max())
        hidden = model.model(
            input_ids=batch["input_ids"][rows, :width], attention_mask=batch["attention_mask"][rows, :width]
        ).last_hidden_state
        labels = batch["labels"][rows, 1:width]
        keep = labels != -100
        loss = (
            F.cross_entropy(
                _at_least_float32(model.lm_head(hidden[:, :-1][keep])), labels[keep], reduction="sum"
            )
            / n_labels
        )
        loss.backward()
        total += loss.item()
    return total


#: The interrupted build's state (model, optimizer, schedule, RNG, losses); not a run folder's checkpoint.
CHECKPOINT = "base_training_state.pt"


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name, then rename: an interruption leaves the previous checkpoint whole."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it was written for ``fingerprint`` (config and vocabulary); None without
    one; ValueError naming the file when it belongs to another base (resuming it would mix two bases)."""
    import torch

    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{path}: checkpoint of another base (its config or vocabulary differs from this one's); delete it to "
            "train this base from the start"
        )
    return state


def _adamw(model: Any, *, lr: float, weight_decay: float) -> Any:
    """AdamW with weight decay on the matrices only (not on norms and biases), β₂ 0.98."""
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )


def train_micro_base(
    cfg: MicroBaseConfig,
    out_dir: str | os.PathLike,
    *,
    domains_dir: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    on_step: Callable[[int, Any, Any], None] | None = None,
    checkpoint_every: int = 250,
    stop_after: int | None = None,
) -> Path:
    """Build the word-level tokenizer, train the base from scratch, save both to ``out_dir`` (HF folders).

    Resumable: every ``checkpoint_every`` steps (0: never) the model, optimizer, schedule, torch RNG and loss
    history go to ``out_dir/`` :data:`CHECKPOINT` (atomically); a call that finds one continues from it, to the same
    weights as an uninterrupted run (the rows are a function of the step; tested). ``stop_after``: return after
    that many steps of this call, leaving the checkpoint (for tests and time-boxed sessions); the finished base
    has no checkpoint.

    ``on_step(step, model, tokenizer)`` runs after every optimizer step (a probe may evaluate the model; it must
    leave it in train mode)."""
    import torch

    if cfg.polish_steps:
        raise ValueError(
            "polish_steps: train_micro_base trains the base below the polish (parent_config(cfg)); "
            "polish_micro_base (or ensure_micro_base) adds the polish phase"
        )
    from iga.isomers.domains import load_domains
    from iga.models.students import build_student, spec_dict
    from iga.models.word_tokenizer import build_word_tokenizer, vocab_hash
    from iga.utils.provenance import provenance

    torch.set_flush_denormal(True)  # denormal weights made a small model 1.5-2x slower on CPU
    t0 = time.perf_counter()
    domains = load_domains(domains_dir)
    tok = build_word_tokenizer(max_int=cfg.max_int, domains=domains)
    rows = MicroRows(cfg, tok, domains)
    model = build_student(cfg.student, tok, seed=cfg.seed)
    opt = _adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT
    vocab = vocab_hash(list(tok.convert_ids_to_tokens(list(range(len(tok))))))
    fingerprint = {"config": asdict(cfg), "vocab_hash": vocab}
    losses: list[float] = []
    start, seconds_before, resumed_from = 0, 0.0, []
    state = _load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        losses, start = list(state["losses"]), int(state["step"])
        seconds_before, resumed_from = float(state["seconds"]), [*state["resumed_from"], start]
    model.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    for step in range(start, end):
        loss = _backward_by_length(model, rows.batch(step))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss)
        if progress is not None:
            progress(step + 1, cfg.steps, losses[-1])
        if on_step is not None:
            on_step(step + 1, model, tok)
        done = step + 1
        if done < cfg.steps and ((checkpoint_every and done % checkpoint_every == 0) or done == end):
            _save_checkpoint(
                checkpoint,
                {
                    "fingerprint": fingerprint,
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "losses": losses,
                    "seconds": seconds_before + time.perf_counter() - t0,
                    "resumed_from": resumed_from,
                },
            )
    if end < cfg.steps:
        return out_dir
    model.eval()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    tail = losses[-min(50, len(losses)) :]
    atomic_write_json(
        out_dir / BASE_MARKER,
        {
            "kind": "micro",
            "micro_base_config": keyed_config(cfg),  # the fields that name the base
            "student_spec": spec_dict(cfg.student),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tok),
            "vocab_hash": vocab,
            "first_loss": losses[0],
            "final_loss": sum(tail) / len(tail),
            "loss_curve": [
                round(sum(losses[i : i + 50]) / len(losses[i : i + 50]), 4) for i in range(0, len(losses), 50)
            ],
            # over every call that trained it (a resumed base adds each call's time, start-up included)
            "seconds": round(seconds_before + time.perf_counter() - t0, 2),
            "resumed_from_steps": resumed_from,
            "torch_threads": torch.get_num_threads(),
            "command": "iga pretrain --regime micro"
            + ("" if cfg == MicroBaseConfig() else f"  # {asdict(cfg)}"),
            "provenance": provenance(),
        },
    )
    checkpoint.unlink(missing_ok=True)
    return out_dir


def polish_micro_base(
    cfg: MicroBaseConfig,
    parent_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    domains_dir: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    on_step: Callable[[int, Any, Any], None] | None = None,
) -> Path:
    """Train ``cfg``'s polish phase on the finished base in ``parent_dir`` (built for :func:`parent_config`) and
    save the result to ``out_dir``: ``cfg.polish_steps`` steps with a fresh AdamW at ``polish_lr`` (linear warm-up
    over 20 steps, then constant), on rows ``cfg.steps … cfg.steps + polish_steps - 1`` of :class:`MicroRows`.

    Not checkpointed: it takes a few minutes, and an interrupted polish starts over from the parent.
    ``progress(step, total, loss)`` counts the whole base's steps (the parent's, then the polish's: ``total`` is
    ``steps + polish_steps``); ``on_step(step, model, tokenizer)`` the polish's own."""
    import json

    import torch

    from iga.isomers.domains import load_domains
    from iga.models.pretrain import load_base
    from iga.models.word_tokenizer import vocab_hash
    from iga.utils.provenance import provenance

    if not cfg.polish_steps:
        raise ValueError("polish_steps: 0 (no polish phase to train); use train_micro_base")
    parent_dir = Path(parent_dir)
    parent_info = json.loads((parent_dir / BASE_MARKER).read_text())
    if parent_info.get("micro_base_config") != json.loads(json.dumps(keyed_config(parent_config(cfg)))):
        raise ValueError(f"{parent_dir}: not the base below this polish (its micro_base_config differs)")
    torch.set_flush_denormal(True)
    t0 = time.perf_counter()
    model, tok = load_base(parent_dir)
    rows = MicroRows(cfg, tok, load_domains(domains_dir))
    opt = _adamw(model, lr=cfg.polish_lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    losses: list[float] = []
    model.train()
    for i in range(cfg.polish_steps):
        losses.append(_backward_by_length(model, rows.batch(cfg.steps + i)))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if progress is not None:
            progress(cfg.steps + i + 1, cfg.steps + cfg.polish_steps, losses[-1])
        if on_step is not None:
            on_step(i + 1, model, tok)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    seconds = time.perf_counter() - t0
    tail = losses[-min(50, len(losses)) :]
    atomic_write_json(
        out_dir / BASE_MARKER,
        {
            **{k: parent_info[k] for k in ("kind", "student_spec", "num_parameters", "vocab_size")},
            "micro_base_config": keyed_config(cfg),
            "vocab_hash": vocab_hash(list(tok.convert_ids_to_tokens(list(range(len(tok)))))),
            "parent": parent_dir.name,
            "parent_seconds": parent_info["seconds"],
            "polish_seconds": round(seconds, 2),
            "first_loss": losses[0],
            "final_loss": sum(tail) / len(tail),
            "loss_curve": [
                round(sum(losses[i : i + 50]) / len(losses[i : i + 50]), 4) for i in range(0, len(losses), 50)
            ],
            # the base's whole cost: its parent's training and the polish
            "seconds": round(parent_info["seconds"] + seconds, 2),
            "torch_threads": torch.get_num_threads(),
            "command": f"iga pretrain --regime micro  # {asdict(cfg)}",
            "provenance": provenance(),
        },
    )
    return out_dir


#: Fields added after the cache key's version 2, with the value every base built before them had: they enter the
#: key only when set to something else, so those bases (the first shipped one, now the default's parent) keep
#: their folder names.
KEYED_UNLESS = {
    "fact_drill_share": 0.0,
    "late_fact_drill_share": None,
    "fact_drill_rows": "any",
    "polish_steps": 0,
}


def keyed_config(cfg: MicroBaseConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that name its base (the cache key's and ``base.json``'s ``micro_base_config``)."""
    fields = asdict(cfg)
    if not cfg.polish_steps:  # without a polish phase its settings shape nothing
        del fields["polish_lr"], fields["polish_fact_drill_share"]
    return {k: v for k, v in fields.items() if k not in KEYED_UNLESS or v != KEYED_UNLESS[k]}
