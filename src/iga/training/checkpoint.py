"""Atomic training checkpoints: trainable weights, optimizer, scheduler, algorithm state, RNG, step.

A checkpoint is one file written to a temporary name and renamed, so a run killed mid-write keeps its previous
checkpoint intact. Only trainable tensors are saved (the LoRA factors): the frozen base is rebuilt from its own
files, which keeps checkpoints small.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": step,
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, *, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore a checkpoint in place; returns the payload (``step``, ``extra``)."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    missing = [n for n in payload["trainable"] if n not in params]
    if missing:
        raise ValueError(
            f"{path}: checkpoint holds parameters the model does not have, e.g. {missing[:3]}; "
            "was it written with another student or LoRA configuration?"
        )
    with torch.no_grad():
        for name, value in payload["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"])
    return payload
