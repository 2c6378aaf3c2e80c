"""IGA inside 🤗 ``transformers.Trainer``: a thin subclass that only sets the capture's domain context.

What :class:`IGATrainer` changes, and nothing else:

* **Batches.** The train dataloader draws whole isomer sets (:class:`~iga.integrations.IsomerSetBatchSampler`,
  ``per_device_train_batch_size`` rows = sets × K) and the collator keeps ``domain_id`` and sorts rows by domain
  (:class:`~iga.integrations.DomainBatchCollator`). ``remove_unused_columns`` is turned off (with a warning) so the
  column survives; the collator picks the token fields itself.
* **Objective.** ``compute_loss`` returns ``L = (1/K) Σ_k L_k``, the mean of per-domain mean token losses, like
  ``iga train`` (the model's own token-pooled loss would weigh domains by their token counts).
  ``training_step`` runs the forward and backward inside ``capture.domains(domain_ids, sync=...)``; ``sync`` is
  the Trainer's own gradient-accumulation sync flag, so per-domain sums span all micro-batches of a step.
* **Clipping order.** ``Trainer`` clips ``.grad`` *before* ``optimizer.step()``, i.e. the raw mean gradient, which
  IGA then replaces. So ``args.max_grad_norm`` is moved into ``IGAConfig.max_grad_norm`` (IGA clips after its
  rewrite, as ``iga train`` does) and set to 0 on the Trainer. The Trainer's logged ``grad_norm`` is then the
  norm of the raw mean gradient; ``iga/grad_norm`` is the norm of the update IGA handed to the base optimizer.
* **Optimizer.** Built by ``Trainer`` as usual (``optim``, betas, eps, weight-decay groups) and wrapped in
  :class:`~iga.IGAOptimizer`; or pass ``optimizers=(create_iga_optimizer(model, ...), scheduler)``.
* **DDP** (``torchrun`` / ``accelerate launch``, one process per GPU). Accelerate hands rank ``r`` the sampler's
  batches ``r, r+W, r+2W, ...``, so every rank draws whole isomer sets and the ranks of one optimizer step together
  hold the ``GA·W`` consecutive batches a single process with ``GA·W`` accumulation steps would see; the
  sampler's epoch length is a multiple of ``GA·W`` so every rank runs the same number of optimizer steps. The
  backward runs under DDP's ``no_sync()``: ``IGAOptimizer.step()`` replaces the LoRA ``.grad`` with its own
  factor gradients and averages every trainable gradient over the ranks itself, once (DDP's all-reduce of the raw
  ``.grad`` would be discarded work, and its bucketed collectives would interleave with ``stats_scope="global"``'s
  in-backward ones). ``IGAConfig.stats_scope`` keeps its meaning: ``"local"`` masks each rank's own per-domain
  sums, ``"global"`` averages them over the ranks first. ``loss/<domain>`` logs are averaged over the ranks;
  ``iga/*`` are rank 0's (under ``"local"``, its own mask statistics).

Refused with a message: fp16 (its GradScaler unscales ``.grad`` before IGA rewrites it; use bf16 or fp32),
label smoothing and ``compute_loss_func`` (another objective), Liger kernels (fused losses), packing /
padding-free collators, nn.DataParallel, FSDP, DeepSpeed and ``parallelism_config`` (tensor / context parallel),
and under DDP Accelerate's ``split_batches`` / ``dispatch_batches`` (they cut or re-deal the isomer-set batches).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DataCollatorWithFlattening, Trainer, TrainingArguments

from iga.algorithms.iga import IGAOptimizer
from iga.algorithms.iga_config import IGAConfig
from iga.distributed import all_reduce_mean, check_distributed_type
from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.losses import IGNORE_INDEX
from iga.integrations.batching import DomainBatchCollator, IsomerSetBatchSampler
from iga.integrations.callbacks import RunRecordCallback, SamplerEpochCallback

logger = logging.getLogger(__name__)

#: ``IGAOptimizer.last_metrics`` entries added to the Trainer's logs as ``iga/<name>`` (values of the last step).
LOGGED_METRICS = (
    "mask_mean",
    "mask_below_half",
    "vhat_mean",
    "tau",
    "grad_norm",
    "energy_kept_mean",
    "skipped_steps",
)


def check_training_args(args: TrainingArguments, *, trainer: str = "IGATrainer") -> None:
    """Refuse settings that break per-domain gradients or IGA's update; turn off ``remove_unused_columns``.

    Raises:
        ValueError: naming the setting and what to use instead.
    """
    refusals = {
        "fp16": (
            args.fp16,
            "fp16 trains with a GradScaler that unscales .grad before optimizer.step(), but IGAOptimizer replaces "
            ".grad inside step() with gradients built from the still-scaled per-domain pieces; use bf16=True or fp32",
        ),
        "label_smoothing_factor": (
            args.label_smoothing_factor > 0,
            "label smoothing changes the objective away from the per-domain mean token loss IGA is defined on",
        ),
        "use_liger_kernel": (
            getattr(args, "use_liger_kernel", False),
            "Liger's fused linear cross-entropy replaces the model's forward and loss; use the plain forward",
        ),
        "n_gpu": (
            args.n_gpu > 1,
            "several GPUs in one process means nn.DataParallel, whose replicas run the per-domain hooks on parts of "
            "the batch; make one GPU visible (CUDA_VISIBLE_DEVICES)",
        ),
        "deepspeed": (bool(args.deepspeed), "DeepSpeed is not supported with IGA yet (docs/guide.md)"),
        "fsdp": (bool(args.fsdp), "FSDP is not supported with IGA yet (docs/guide.md)"),
        "parallelism_config": (
            getattr(args, "parallelism_config", None) is not None,
            "tensor, context and sequence parallelism split weights or sequences across ranks, so no rank sees a "
            "whole layer's per-domain gradient; use plain DDP (one process per GPU, no parallelism_config)",
        ),
    }
    for name, (bad, why) in refusals.items():
        if bad:
            raise ValueError(
                f"{trainer}: TrainingArguments.{name}={_short_repr(getattr(args, name))} is not supported: {why}"
            )
    _check_ddp_data(args, trainer)
    if getattr(args, "train_sampling_strategy", "random") not in ("random", "sequential"):
        warnings.warn(
            f"{trainer}: train_sampling_strategy={args.train_sampling_strategy!r} is ignored; batches are whole "
            "isomer sets in iga train's order",
            stacklevel=3,
        )
    if args.remove_unused_columns:
        warnings.warn(
            f"{trainer}: setting remove_unused_columns=False so that the domain_id column reaches the collator "
            "(the collator keeps only the token fields and domain_id)",
            stacklevel=3,
        )
        args.remove_unused_columns = False


def _short_repr(value: Any) -> str:
    # A config object's repr spans many lines; the message only needs to say which setting was given.
    text = repr(value)
    return text if len(text) <= 60 and "\n" not in text else f"{type(value).__name__}(...)"


def _check_ddp_data(args: TrainingArguments, trainer: str) -> None:
    """Refuse launches and Accelerate data options under which ranks would not each draw whole isomer sets."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and args.world_size != launched:
        hint = " On a machine without GPUs pass TrainingArguments(use_cpu=True)." if not args.use_cpu else ""
        raise ValueError(
            f"{trainer}: launched with WORLD_SIZE={launched} processes but TrainingArguments.world_size="
            f"{args.world_size}: every process would train alone on the same batches.{hint}"
        )
    if args.world_size <= 1:
        return
    config = args.accelerator_config
    why = {
        "split_batches": "it cuts every batch into per-rank row slices, and rows are domain-major, so a rank would "
        "hold some domains of each isomer set and not others",
        "dispatch_batches": "rank 0 would read W batches and deal out row slices of their concatenation, which "
        "need not be whole isomer sets",
    }
    for name, reason in why.items():
        if getattr(config, name, None):
            raise ValueError(
                f"{trainer}: TrainingArguments.accelerator_config.{name}=True is not supported under DDP "
                f"(world_size={args.world_size}): {reason}; leave it off (every rank then takes whole batches)"
            )


def domain_collator(data_collator: Any, processing_class: Any) -> DomainBatchCollator:
    """``data_collator`` wrapped so that it keeps ``domain_id`` (default: pad with the tokenizer's pad token)."""
    if isinstance(data_collator, DomainBatchCollator):
        return data_collator
    if isinstance(data_collator, DataCollatorWithFlattening):
        raise ValueError(
            "DataCollatorWithFlattening packs the batch into one padding-free row, which erases the row-to-domain "
            "attribution per-domain gradients need; use the default collator"
        )
    if data_collator is not None:
        return DomainBatchCollator(data_collator)
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is None:
        raise ValueError(
            "IGATrainer needs a pad token: pass processing_class=tokenizer (with a pad or EOS token) or "
            "data_collator=DomainBatchCollator(pad_token_id=...)"
        )
    return DomainBatchCollator(pad_token_id=pad)


class IGATrainerMixin:
    """The IGA glue shared by :class:`IGATrainer` and :class:`~iga.integrations.trl.IGASFTTrainer`.

    Subclasses implement ``_domain_losses(model, inputs, domain_ids) -> ((K,) losses, outputs)`` and
    ``_pooled_loss(model, inputs) -> (loss, outputs)`` (evaluation: the ordinary token-mean loss).
    """

    # compute_loss returns a per-micro-batch mean: the Trainer divides it by the accumulation steps, as iga train does.
    loss_is_scaled_for_ga = False

    def _iga_init(self, iga_config: IGAConfig | None) -> None:
        trainer: Any = self
        if trainer.compute_loss_func is not None:
            raise ValueError("IGA trainers compute the objective themselves; do not pass compute_loss_func")
        # The loss never receives num_items_in_batch: skip the Trainer's per-step token count (a gather under DDP).
        trainer.model_accepts_loss_kwargs = False
        args = trainer.args
        # FSDP / DeepSpeed / Megatron chosen through `accelerate launch`'s config reach the Accelerator, not args.
        check_distributed_type(trainer.accelerator.distributed_type, algorithm="iga", capture_space="full")
        # Accelerate gives rank r the batches r, r+W, ...: an epoch of GA·W-multiple length gives every rank the
        # same number of full accumulation steps (each optimizer step then covers GA·W consecutive batches).
        steps_multiple = args.gradient_accumulation_steps * args.world_size
        self.isomer_sampler = IsomerSetBatchSampler.from_dataset(
            trainer.train_dataset,
            rows_per_batch=args.per_device_train_batch_size,
            seed=args.data_seed if args.data_seed is not None else args.seed,
            batches_multiple_of=steps_multiple,
        )
        trainer.add_callback(
            SamplerEpochCallback(self.isomer_sampler, len(self.isomer_sampler) // steps_multiple)
        )
        self.num_domains = self.isomer_sampler.num_domains
        self.domain_names = _domain_names(trainer.train_dataset, self.num_domains)
        trainer.add_callback(RunRecordCallback(self, isomer_sets=self.isomer_sampler.num_sets))
        self._domain_loss_sum: Tensor | None = None
        self._domain_loss_count = 0
        if trainer.optimizer is not None:
            if iga_config is not None:
                raise ValueError("pass either optimizers=(IGAOptimizer, scheduler) or iga_config, not both")
            optimizer = self.iga_optimizer
            if optimizer.capture.model is not trainer.model:
                raise ValueError("the IGAOptimizer's capture was built on another model than the trainer's")
            optimizer.config = self._clip_after_rewrite(optimizer.config)
            self._iga_config = optimizer.config
        else:
            self._iga_config = self._clip_after_rewrite(iga_config if iga_config is not None else IGAConfig())

    def _clip_after_rewrite(self, config: IGAConfig) -> IGAConfig:
        args = self.args  # type: ignore[attr-defined]
        if args.max_grad_norm and args.max_grad_norm > 0:
            if config.max_grad_norm is None:
                config = replace(config, max_grad_norm=float(args.max_grad_norm))
                logger.info(
                    "IGA: clipping to max_grad_norm=%s after the IGA rewrite (Trainer clipping off)",
                    args.max_grad_norm,
                )
            elif config.max_grad_norm != args.max_grad_norm:
                warnings.warn(
                    f"IGA: TrainingArguments.max_grad_norm={args.max_grad_norm} ignored in favour of "
                    f"IGAConfig.max_grad_norm={config.max_grad_norm} (applied after the IGA rewrite)",
                    stacklevel=4,
                )
            args.max_grad_norm = 0.0
        return config

    @property
    def iga_config(self) -> IGAConfig:
        """The IGA options in force (``max_grad_norm`` included)."""
        return self._iga_config

    @property
    def iga_optimizer(self) -> IGAOptimizer:
        """The :class:`~iga.IGAOptimizer` (unwrapped from Accelerate's ``AcceleratedOptimizer``)."""
        opt = self.optimizer  # type: ignore[attr-defined]
        opt = getattr(opt, "optimizer", opt) if not isinstance(opt, IGAOptimizer) else opt
        if not isinstance(opt, IGAOptimizer):
            raise TypeError(
                f"IGA trainers need an IGAOptimizer (create_iga_optimizer(model, ...)), got {type(opt).__name__}"
            )
        return opt

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's own optimizer (``optim``, weight-decay groups, ...) wrapped in :class:`~iga.IGAOptimizer`."""
        trainer: Any = self
        if trainer.optimizer is None:
            base = super().create_optimizer(model)  # type: ignore[misc]
            trainer.optimizer = IGAOptimizer(
                base, DomainGradCapture(trainer.model, space="full"), self._iga_config
            )
        return trainer.optimizer

    def get_train_dataloader(self) -> Any:
        """Batches of whole isomer sets, in ``iga train``'s order for the same seed."""
        from torch.utils.data import DataLoader

        trainer: Any = self
        if trainer.train_dataset is None:
            raise ValueError("training requires a train_dataset")
        args = trainer.args
        params: dict[str, Any] = {
            "batch_sampler": self.isomer_sampler,
            "collate_fn": trainer.data_collator,
            "num_workers": args.dataloader_num_workers,
            "pin_memory": args.dataloader_pin_memory,
            "persistent_workers": args.dataloader_persistent_workers,
        }
        if args.dataloader_num_workers > 0:
            params["prefetch_factor"] = args.dataloader_prefetch_factor
        return trainer.accelerator.prepare(DataLoader(trainer.train_dataset, **params))

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> Tensor:
        """The Trainer's step (forward + backward) inside the capture's per-domain context."""
        trainer: Any = self
        if "domain_ids" not in inputs:
            raise ValueError(
                "the batch has no 'domain_ids': use DomainBatchCollator (IGA trainers wrap any data_collator in it)"
            )
        capture = self.iga_optimizer.capture
        domain_ids = inputs["domain_ids"].to(trainer.args.device)
        # DDP never all-reduces .grad here (no_sync is a no-op in one process): IGAOptimizer.step() averages every
        # trainable gradient over the ranks once, after replacing the LoRA ones (module docstring).
        with (
            capture.domains(
                domain_ids,
                num_domains=self.num_domains,
                sync=trainer.accelerator.sync_gradients,
                position_ids=inputs.get("position_ids"),
            ),
            trainer.accelerator.no_sync(model),
        ):
            return super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Training: ``(1/K) Σ_k L_k``; evaluation: the token-mean loss of the batch."""
        inputs = dict(inputs)
        domain_ids = inputs.pop("domain_ids", None)
        if model.training:
            if domain_ids is None:
                raise ValueError("a training batch has no 'domain_ids'")
            losses, outputs = self._domain_losses(model, inputs, domain_ids)
            detached = losses.detach().float()
            self._domain_loss_sum = (
                detached if self._domain_loss_sum is None else self._domain_loss_sum + detached
            )
            self._domain_loss_count += 1
            loss = losses.mean()
        else:
            loss, outputs = self._pooled_loss(model, inputs)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs gain ``loss/<domain>`` (mean since the last log) and ``iga/<metric>`` (last step)."""
        if "loss" in logs:
            if self._domain_loss_sum is not None and self._domain_loss_count:
                means_t = self._domain_loss_sum / self._domain_loss_count
                # Every rank logs here (the Trainer gathers its own loss at this point too); a no-op in one process.
                all_reduce_mean([means_t])
                means = means_t.tolist()
                logs.update({f"loss/{name}": v for name, v in zip(self.domain_names, means, strict=True)})
            self._domain_loss_sum, self._domain_loss_count = None, 0
            metrics = self.iga_optimizer.last_metrics
            logs.update({f"iga/{k}": float(metrics[k]) for k in LOGGED_METRICS if k in metrics})
        super().log(logs, start_time)  # type: ignore[misc]

    def _domain_losses(
        self, model: nn.Module, inputs: dict[str, Any], domain_ids: Tensor
    ) -> tuple[Tensor, Any]:
        raise NotImplementedError(f"{type(self).__name__} must override _domain_losses() (per-domain losses)")

    def _pooled_loss(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, Any]:
        raise NotImplementedError(
            f"{type(self).__name__} must override _pooled_loss() (the pooled fallback loss)"
        )


class IGATrainer(IGATrainerMixin, Trainer):
    """``transformers.Trainer`` for IGA on isomer-set datasets (see the module docstring for what changes).

    Args:
        model: a PEFT LoRA causal LM (LoRA on Linear layers, ``lora_dropout=0``).
        args: ``TrainingArguments``; ``per_device_train_batch_size`` counts rows and must be a multiple of K.
        train_dataset: rows with ``input_ids``, ``labels``, ``instance_id`` and ``domain_id``
            (:func:`~iga.integrations.isomer_dataset` with ``tokenize=True``).
        iga_config: IGA options when the trainer builds the optimizer (default :class:`~iga.IGAConfig`).
        data_collator: optional; wrapped in :class:`~iga.integrations.DomainBatchCollator`.
        **kwargs: any other ``Trainer`` argument (``processing_class``, ``eval_dataset``, ``callbacks``,
            ``optimizers=(create_iga_optimizer(model, lr=...), scheduler)``, ...).

    Example::

        trainer = IGATrainer(model=peft_model, args=TrainingArguments("out", per_device_train_batch_size=8),
                             train_dataset=isomer_dataset(records, tokenizer=tok, tokenize=True, max_length=384),
                             processing_class=tok, iga_config=IGAConfig(tau=10.0))
        trainer.train()
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        *,
        iga_config: IGAConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            raise ValueError(
                "IGATrainer needs TrainingArguments (per_device_train_batch_size = sets × K rows)"
            )
        check_training_args(args, trainer=type(self).__name__)
        collator = domain_collator(data_collator, kwargs.get("processing_class"))
        super().__init__(
            model=model, args=args, data_collator=collator, train_dataset=train_dataset, **kwargs
        )
        self._iga_init(iga_config)

    def _domain_losses(
        self, model: nn.Module, inputs: dict[str, Any], domain_ids: Tensor
    ) -> tuple[Tensor, Any]:
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        return per_domain_token_loss(outputs.logits, labels, domain_ids, self.num_domains), outputs

    def _pooled_loss(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, Any]:
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        logits = outputs.logits[:, :-1]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels[:, 1:].reshape(-1).to(logits.device),
            ignore_index=IGNORE_INDEX,
        )
        return loss, outputs


def _domain_names(dataset: Any, num_domains: int) -> list[str]:
    # For the loss/<domain> log keys; falls back to the index when the dataset has no 'domain' column.
    names = [str(k) for k in range(num_domains)]
    if "domain" in (getattr(dataset, "column_names", None) or []):
        for name, k in zip(dataset["domain"], dataset["domain_id"], strict=True):
            names[int(k)] = str(name)
    return names
