"""Everything a run needs before its first step: data, student + LoRA, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iga.config import TrainConfig
from iga.training.data import IsomerSet, group_isomer_sets
from iga.utils.io import read_jsonl


def load_train_sets(cfg: TrainConfig) -> tuple[list[IsomerSet], dict]:
    """Complete isomer sets of the training split over ``cfg.train_domains``, plus the data manifest (if any)."""
    import json

    data_dir = Path(cfg.data_dir)
    path = data_dir / f"{cfg.train_split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"training split not found: {path} (build one with `iga data build --out {data_dir}`)"
        )
    records = read_jsonl(path)
    manifest_path = data_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return group_isomer_sets(records, cfg.train_domains, source=str(path)), manifest


def load_base_model(cfg: TrainConfig) -> tuple[Any, Any]:
    """(model, tokenizer) of ``cfg.base_dir``: a pretrained base folder, a local checkpoint or a real-model preset."""
    from iga.models.pretrain import load_base
    from iga.models.resolve import resolve_student

    if cfg.base_dir is None:
        raise ValueError(
            "base_dir is required: run `iga pretrain` (built-in students), pass a local checkpoint, "
            "or a preset such as smollm2-135m"
        )
    return load_base(resolve_student(cfg.base_dir))


def load_student(cfg: TrainConfig) -> tuple[Any, Any]:
    """(LoRA-wrapped model, tokenizer) from ``cfg.base_dir`` (a pretrained base or any local HF checkpoint)."""
    from iga.models.lora import attach_lora

    model, tokenizer = load_base_model(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    model = attach_lora(
        model,
        r=cfg.lora.r,
        alpha=cfg.lora.alpha,
        dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        init=cfg.lora.init,
        algorithm=cfg.algorithm,
    )
    return model, tokenizer


def load_teacher(cfg: TrainConfig, device: Any) -> Any:
    """The in-memory teacher for ``loss: kd | mix`` (None for ``sft``), frozen, on ``device``."""
    if cfg.loss == "sft":
        return None
    from iga.models.students import load_causal_lm
    from iga.teachers.kd import TeacherLogits

    return TeacherLogits(load_causal_lm(cfg.teacher_dir).to(device))
