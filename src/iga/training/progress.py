"""A rich progress bar with ETA for training steps (silent when disabled or not a terminal)."""

from __future__ import annotations

import sys
from typing import Any


class StepProgress:
    def __init__(
        self, *, total: int, start: int = 0, enabled: bool = True, description: str = "train"
    ) -> None:
        self._progress: Any = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, completed=start, loss=float("nan"))

    def update(self, completed: int, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
