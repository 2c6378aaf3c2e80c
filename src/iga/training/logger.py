"""Metric logging: one JSON line per logged step (always) and TensorBoard scalars (when installed)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from iga.training.outputs import LOG_NAME, TENSORBOARD_DIR


class RunLogger:
    """Append-only JSONL log (``log.jsonl``) plus TensorBoard event files under ``tb/``.

    On resume the JSONL is truncated to the steps before the checkpoint, so a log never lists a step twice.
    """

    def __init__(
        self, out_dir: str | os.PathLike, *, resume_step: int | None = None, tensorboard: bool = True
    ) -> None:
        self.path = Path(out_dir) / LOG_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [
                ln
                for ln in self.path.read_text().splitlines()
                if ln and json.loads(ln).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(out_dir) / TENSORBOARD_DIR))
            except ImportError:  # tensorboard is optional at run time; JSONL always works
                self._tb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v
