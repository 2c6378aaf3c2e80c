"""One run end to end: write the config, train (resumable), record the result, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iga.config import TrainConfig
from iga.runs.folder import RunFolder, data_fingerprint
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
    run = RunFolder(cfg.out_dir)
    if resume and run.config.exists():
        _check_resume_config(run.config, cfg)
    elif not resume and run.checkpoint.exists():
        raise ValueError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    if main:
        atomic_write_json(run.config, cfg.model_dump())
    trained = train(cfg, resume=resume, progress=progress)
    if not main:
        return {"train": trained["summary"], "rank": int(os.environ["RANK"])}
    result = run.update_result(
        config=cfg.model_dump(), data=data_fingerprint(trained["manifest"]), train=trained["summary"]
    )
    if evaluate:
        from iga.runs.evaluate import DEFAULT_EVAL_SPLITS, evaluate_and_record

        result = evaluate_and_record(
            run,
            cfg,
            trained["model"],
            trained["tokenizer"],
            splits=eval_splits or DEFAULT_EVAL_SPLITS,
            per_skeleton=per_skeleton,
            progress=progress,
            max_new_tokens=max_new_tokens,
        )
    return result
