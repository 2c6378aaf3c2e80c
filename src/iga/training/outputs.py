"""The files :func:`iga.training.loop.train` writes into ``cfg.out_dir``.

Training sits below the run (:mod:`iga.runs`), so it owns the names of what it writes; the run folder class,
:class:`iga.runs.folder.RunFolder`, names these together with the run's own files, and every layer above training
reaches a run's files through it.
"""

from __future__ import annotations

#: Trainable weights, optimizer, scheduler, algorithm state, RNG and step (:mod:`iga.training.checkpoint`).
CHECKPOINT_NAME = "checkpoint.pt"
#: One JSON line per logged step (:class:`iga.training.logger.RunLogger`).
LOG_NAME = "log.jsonl"
#: TensorBoard event files (when tensorboard is installed).
TENSORBOARD_DIR = "tb"
#: The trained LoRA adapter (``save_pretrained``), written when training ends.
ADAPTER_DIR = "adapter"
#: The training summary (steps, timings, parameter count, hyper-parameters), written when training ends.
TRAIN_SUMMARY_NAME = "train_summary.json"
