"""One run end to end: write the config, train (resumable), record the result, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iga.config import TrainConfig
from iga.experiments.results import data_fingerprint, update_result
from iga.utils.io import atomic_write_json


def _check_resume_config(path: Path, cfg: TrainConfig) -> None:
    old = json.loads(path.read_text())
    new = cfg.model_dump()
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ("steps",))
    if changed:
        raise ValueError(
            f"--resume with a different configuration ({', '.join(changed)} changed); "
            f"use a new --out or the original settings of {path}"
        )


def run_training(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    evaluate: bool = True,
    per_skeleton: int | None = None,
    progress: bool = True,
    max_new_tokens: int | None = None,
    eval_splits: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    import os

    from iga.training.loop import train

    # Under `accelerate launch` / torchrun every rank runs this function; rank 0 alone writes and evaluates.
    main = int(os.environ.get("RANK", "0")) == 0
    out = Path(cfg.out_dir)
    cfg_path = out / "config.json"
    if resume and cfg_path.exists():
        _check_resume_config(cfg_path, cfg)
    elif not resume and (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if main:
        atomic_write_json(cfg_path, cfg.model_dump())
    trained = train(cfg, resume=resume, progress=progress)
    if not main:
        return {"train": trained["summary"], "rank": int(os.environ["RANK"])}
    result = update_result(
        out, config=cfg.model_dump(), data=data_fingerprint(trained["manifest"]), train=trained["summary"]
    )
    if evaluate:
        from iga.experiments.evaluate import DEFAULT_EVAL_SPLITS, eval_domains, evaluate_model
        from iga.models.chat import make_prompt_format

        id_domains, heldout = eval_domains(cfg.train_domains, cfg.data_dir)
        ev = evaluate_model(
            trained["model"],
            trained["tokenizer"],
            cfg.data_dir,
            train_domains=id_domains,
            heldout_domains=heldout,
            splits=eval_splits or DEFAULT_EVAL_SPLITS,
            per_skeleton=per_skeleton,
            progress=progress,
            max_new_tokens=max_new_tokens,
            fmt=make_prompt_format(cfg.prompt_format, trained["tokenizer"]),
        )
        from iga.utils.io import atomic_write_jsonl

        atomic_write_jsonl(out / "completions.jsonl", ev.pop("completions"))
        result = update_result(out, eval=ev)
    return result
