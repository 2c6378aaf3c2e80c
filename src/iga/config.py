"""Run configuration: typed, validated, loadable from YAML, with errors that name the field.

Pydantic does the validation (types, ranges, unknown keys); :func:`load_config` turns its errors into one message
per field, e.g. ``train.lr: Input should be greater than 0 (got -1)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoRAConfig(_Strict):
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    init: Literal["default", "gaussian"] = "default"


class TrainConfig(_Strict):
    """Everything one distillation run needs. ``algorithm_options`` are validated by the algorithm itself."""

    data_dir: str
    out_dir: str
    algorithm: str = "erm"
    algorithm_options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"
    train_domains: list[str] = Field(default_factory=lambda: ["math", "medicine", "law", "science"])
    student: str = "small"
    base_dir: str | None = (
        None  # a base folder (`iga pretrain`), a local HF checkpoint, or a preset (smollm2-135m)
    )
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    loss: Literal["sft", "kd", "mix"] = "sft"
    cot_field: Literal["gold_cot", "teacher_cot"] = "gold_cot"  # teacher_cot: written by `iga teach`
    prompt_format: Literal["plain", "chat"] = "plain"  # chat: the tokenizer's chat template (instruct models)
    teacher_dir: str | None = None  # in-memory teacher for loss kd/mix (same tokenizer as the student)
    kd_temperature: float = Field(2.0, gt=0)
    kd_alpha: float = Field(0.5, ge=0, le=1)  # mix = alpha·CE + (1 − alpha)·KD
    steps: int = Field(200, ge=1)
    sets_per_batch: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    lr_floor: float = Field(0.1, ge=0, le=1)  # cosine: the last step's LR as a share of ``lr``
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_length: int = Field(384, ge=8)
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    cpu: bool = False

    @model_validator(mode="after")
    def _teacher_for_kd(self) -> TrainConfig:
        if self.loss in ("kd", "mix") and not self.teacher_dir:
            raise ValueError(
                f"loss={self.loss!r} needs teacher_dir (a local causal LM with the student's tokenizer)"
            )
        return self


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"{prefix}{loc}: {e['msg']}{got}")
    return "\n".join(lines)


def load_yaml(path: str | os.PathLike) -> dict:
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file does not exist: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of option: value")
    return data


def build_config(cls: type[_Strict], data: dict, *, source: str = "config") -> Any:
    """Validate ``data`` as ``cls``; raise ``ValueError`` with one ``field: message`` line per problem."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{source}: invalid configuration\n" + format_validation_error(e)) from None
