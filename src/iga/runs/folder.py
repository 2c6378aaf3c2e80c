"""The run folder: every file one run writes, named here once (``iga train --out DIR``, a sweep's ``jobs/<id>``).

::

    DIR/config.json          the TrainConfig, written before training (checked on --resume)
    DIR/log.jsonl            one line per logged step; DIR/tb/ the same as TensorBoard events
    DIR/checkpoint.pt        the latest checkpoint (resume starts here)
    DIR/adapter/             the trained LoRA adapter; DIR/train_summary.json   (when training ends)
    DIR/result.json          config, provenance, data hash, training summary, evaluation metrics
    DIR/completions.jsonl    every evaluated record's completion and scores
    DIR/external-NAME.jsonl  per-item results of ``iga eval-external --run DIR``

``result.json`` is rewritten atomically whenever a stage adds to it (training, then evaluation, then external
tasks), so it is always valid. Training writes its own files (:mod:`iga.training.outputs`, below this layer);
everything above training reaches them through :class:`RunFolder`.

Example:
    >>> import tempfile
    >>> run = RunFolder(tempfile.mkdtemp())
    >>> run.result.name, run.checkpoint.name, run.external_items("gsm_symbolic").name
    ('result.json', 'checkpoint.pt', 'external-gsm_symbolic.jsonl')
    >>> run.read_result(), run.started()
    ({}, False)
    >>> sorted(run.update_result(train={"steps": 5}))
    ['provenance', 'train']
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from iga.training.outputs import (
    ADAPTER_DIR,
    CHECKPOINT_NAME,
    LOG_NAME,
    TENSORBOARD_DIR,
    TRAIN_SUMMARY_NAME,
)
from iga.utils.io import atomic_write_json
from iga.utils.provenance import provenance

CONFIG_NAME = "config.json"
RESULT_NAME = "result.json"
COMPLETIONS_NAME = "completions.jsonl"
EXTERNAL_PREFIX = "external-"


class RunFolder:
    """The files of one run folder (nothing is created until a stage writes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def adapter(self) -> Path:
        return self.path / ADAPTER_DIR

    @property
    def train_summary(self) -> Path:
        return self.path / TRAIN_SUMMARY_NAME

    @property
    def result(self) -> Path:
        return self.path / RESULT_NAME

    @property
    def completions(self) -> Path:
        return self.path / COMPLETIONS_NAME

    def external_items(self, name: str) -> Path:
        """Per-item results of the external task or imported file ``name``."""
        return self.path / f"{EXTERNAL_PREFIX}{name}.jsonl"

    # -- the state of an attempt ------------------------------------------------------------------------------

    def started(self) -> bool:
        """Whether an attempt has begun here (it wrote a config, a log line or a checkpoint)."""
        return any(p.exists() for p in (self.checkpoint, self.log, self.config))

    def clear_attempt(self) -> None:
        """Remove what an attempt that died before its first checkpoint left (config, log, result, TensorBoard),
        so that the next attempt starts clean."""
        for target in (self.config, self.log, self.result, self.tensorboard):
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)

    # -- result.json ------------------------------------------------------------------------------------------

    def read_result(self) -> dict[str, Any]:
        """The run's result (``{}`` before the first stage wrote it)."""
        return json.loads(self.result.read_text()) if self.result.exists() else {}

    def update_result(self, **sections: Any) -> dict[str, Any]:
        """Merge ``sections`` into the run's result file (refreshing provenance) and write it atomically."""
        result = self.read_result()
        result.update(sections)
        result["provenance"] = provenance()
        atomic_write_json(self.result, result)
        return result


def data_fingerprint(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a data manifest that identify the data (content hash, generator version, seed, preset)."""
    keys = ("content_hash", "generator_version", "seed", "preset")
    return {k: manifest.get(k) for k in keys if k in manifest}
