"""The callbacks :class:`~iga.integrations.hf_trainer.IGATrainer` adds to a 🤗 ``Trainer``: the isomer sampler's
epoch on resume (:class:`SamplerEpochCallback`) and the run's ``result.json`` when training ends
(:class:`RunRecordCallback`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from transformers import TrainerCallback

from iga.integrations.batching import IsomerSetBatchSampler


class SamplerEpochCallback(TrainerCallback):
    """Set the isomer sampler's epoch at each epoch start, from the optimizer steps taken.

    Why: the Trainer's ``set_epoch`` reaches the sampler through ``DataLoaderShard`` or ``BatchSamplerShard``, but a
    run resumed inside an epoch under DDP wraps it in ``SkipBatchSampler(BatchSamplerShard(sampler))``, which
    neither forwards ``set_epoch``; the resumed epoch would replay epoch 0's sets. ``steps_per_epoch`` is exact
    because the sampler's length is a multiple of ``GA·W``.

    Example:
        >>> from types import SimpleNamespace
        >>> from iga.integrations.batching import IsomerSetBatchSampler
        >>> s = IsomerSetBatchSampler(["a", "a", "b", "b"], [0, 1, 0, 1], rows_per_batch=2)
        >>> SamplerEpochCallback(s, steps_per_epoch=2).on_epoch_begin(None, SimpleNamespace(global_step=5), None)
        >>> s.epoch
        2
    """

    def __init__(self, sampler: IsomerSetBatchSampler, steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.sampler, self.steps_per_epoch = sampler, steps_per_epoch

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sampler.set_epoch(state.global_step // self.steps_per_epoch)


class RunRecordCallback(TrainerCallback):
    """Write ``result.json`` into ``output_dir`` when training ends, as ``iga train`` does for its run folder.

    The file is :class:`~iga.runs.folder.RunFolder`'s (same name, atomic, merged section by section, provenance
    refreshed): ``algorithm``, ``iga_config`` (the options in force, ``max_grad_norm`` included), ``data`` (rows,
    isomer sets, domains, the dataset's fingerprint when it has one), ``trainer`` (the ``TrainingArguments``) and
    ``train`` (steps, epochs, the last logged numbers, the Trainer's runtime figures). Only the main process
    writes.
    """

    def __init__(self, trainer: Any, *, isomer_sets: int) -> None:
        self.trainer = trainer  # an IGATrainerMixin: iga_config, domain_names
        self.isomer_sets = isomer_sets

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        from iga.runs.folder import RunFolder

        trainer: Any = self.trainer
        dataset = trainer.train_dataset
        logged = [entry for entry in state.log_history if "loss" in entry]
        runtime = next((entry for entry in reversed(state.log_history) if "train_runtime" in entry), {})
        RunFolder(args.output_dir).update_result(
            algorithm="iga",
            iga_config=asdict(trainer.iga_config),
            data={
                "rows": len(dataset),
                "isomer_sets": self.isomer_sets,
                "domains": trainer.domain_names,
                "fingerprint": getattr(dataset, "_fingerprint", None),
            },
            trainer={"class": type(trainer).__name__, "args": json.loads(args.to_json_string())},
            train={
                "steps": state.global_step,
                "epochs": state.epoch,
                "last_log": logged[-1] if logged else {},
                **{k: v for k, v in runtime.items() if k.startswith("train_")},
            },
        )
