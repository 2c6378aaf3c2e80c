"""IGA inside TRL's ``SFTTrainer`` (tested with trl 1.16): the :class:`~iga.integrations.IGATrainer` glue plus
what differs in TRL.

* **Data.** TRL tokenizes a prompt-completion dataset itself (:func:`~iga.integrations.isomer_dataset` with
  ``tokenize=False``; chat prompts come from the tokenizer's template) and keeps our ``instance_id`` /
  ``domain_id`` columns through its ``map`` calls. A pre-tokenized dataset (``input_ids`` + ``labels``) is used as is.
  Its collator is wrapped so that ``domain_ids`` survive and rows are domain-major.
* **Loss.** TRL 1.16 computes the loss with a fused LM head that returns per-token log-probabilities without
  materialising the logits. Per-token values keep each row's identity, so IGA uses them directly:
  ``L_k = −Σ_{t∈k} log p_t / N_k`` and the objective is ``(1/K) Σ_k L_k`` — the same numbers as ``iga train``'s
  ``per_domain_token_loss`` on full logits, at TRL's memory cost.
* **Refused:** ``packing`` and ``padding_free`` (one row holds several sequences, so rows no longer map to
  domains), ``loss_type`` other than ``"nll"`` (DFT re-weights tokens: another objective), plus everything
  :func:`~iga.integrations.hf_trainer.check_training_args` refuses.
* **DDP** works as in :class:`~iga.integrations.IGATrainer` (the shared mixin shards whole isomer sets, runs the
  backward under ``no_sync()`` and lets ``IGAOptimizer`` average the rewritten gradients); the 2-process test
  (``tests/distributed/test_ddp_hf_trainer.py``) runs ``IGATrainer``, not this class.

``SFTConfig`` defaults to ``bf16=True`` and ``gradient_checkpointing=True``; on a CPU set ``use_cpu=True,
bf16=False, gradient_checkpointing=False`` (both are supported on GPU).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from trl import SFTConfig, SFTTrainer

from iga.algorithms.iga_config import IGAConfig
from iga.integrations.hf_trainer import IGATrainerMixin, check_training_args, domain_collator


def check_sft_config(args: SFTConfig) -> None:
    """Refuse SFT settings that erase per-row domain attribution or change the objective (see module docstring)."""
    refusals = {
        "packing": (
            args.packing,
            "packing concatenates several sequences into one row, erasing the row-to-domain attribution "
            "per-domain gradients need; set packing=False",
        ),
        "padding_free": (
            args.padding_free,
            "padding-free batches flatten every sequence into one row, erasing the row-to-domain attribution "
            "per-domain gradients need; set padding_free=False",
        ),
        "loss_type": (
            args.loss_type != "nll",
            "IGA is defined on the per-domain mean token negative log-likelihood; use loss_type='nll'",
        ),
    }
    for name, (bad, why) in refusals.items():
        if bad:
            raise ValueError(
                f"IGASFTTrainer: SFTConfig.{name}={getattr(args, name)!r} is not supported: {why}"
            )


class IGASFTTrainer(IGATrainerMixin, SFTTrainer):
    """``trl.SFTTrainer`` for IGA on isomer-set datasets.

    Args:
        model: a model or a local checkpoint path; with ``peft_config`` TRL wraps it in LoRA (keep
            ``lora_dropout=0`` and adapters on Linear layers, not on ``lm_head``).
        args: an ``SFTConfig`` (``packing=False``, ``padding_free=False``, ``loss_type="nll"``);
            ``per_device_train_batch_size`` counts rows and must be a multiple of K.
        train_dataset: :func:`~iga.integrations.isomer_dataset` rows (text or tokenized).
        iga_config: IGA options when the trainer builds the optimizer (default :class:`~iga.IGAConfig`).
        **kwargs: any other ``SFTTrainer`` argument (``processing_class``, ``peft_config``, ``optimizers``, ...).

    Example::

        trainer = IGASFTTrainer(model=model, args=SFTConfig("out", per_device_train_batch_size=8),
                                train_dataset=isomer_dataset(records, tokenizer=tok), processing_class=tok,
                                peft_config=LoraConfig(r=8, target_modules="all-linear"),
                                iga_config=IGAConfig(tau=10.0))
        trainer.train()
    """

    def __init__(
        self,
        model: Any,
        args: SFTConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        *,
        iga_config: IGAConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, SFTConfig):
            raise ValueError(f"IGASFTTrainer needs an SFTConfig, got {type(args).__name__}")
        check_sft_config(args)
        check_training_args(args, trainer=type(self).__name__)
        super().__init__(model, args=args, data_collator=data_collator, train_dataset=train_dataset, **kwargs)
        self.data_collator = domain_collator(self.data_collator, self.processing_class)
        self._iga_init(iga_config)

    def _domain_losses(
        self, model: nn.Module, inputs: dict[str, Any], domain_ids: Tensor
    ) -> tuple[Tensor, Any]:
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        losses = per_domain_mean(-outputs.log_probs, outputs.label_mask, domain_ids, self.num_domains)
        return losses, outputs

    def _pooled_loss(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, Any]:
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        return -outputs.log_probs.sum() / outputs.label_mask.sum().clamp(min=1), outputs


def per_domain_mean(token_losses: Tensor, mask: Tensor, domain_ids: Tensor, num_domains: int) -> Tensor:
    """``(K,)`` mean of ``token_losses`` (B, T) over each domain's masked-in tokens (pooled over its rows).

    ``token_losses`` must already be 0 where ``mask`` is False (TRL's fused head guarantees it). Mirrors the
    reduction of :func:`iga.gradients.per_domain_token_loss`.

    Example:
        >>> import torch
        >>> tok = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
        >>> per_domain_mean(tok, tok > 0, torch.tensor([0, 1]), 2)
        tensor([2., 2.])
    """
    import torch

    ids = domain_ids.long().to(token_losses.device)
    dtype = torch.promote_types(token_losses.dtype, torch.float32)
    rows = token_losses.reshape(token_losses.shape[0], -1).to(dtype).sum(1)
    counts = mask.reshape(mask.shape[0], -1).to(dtype).sum(1)
    dom_sum = torch.zeros(num_domains, dtype=dtype, device=rows.device).index_add(0, ids, rows)
    dom_cnt = torch.zeros(num_domains, dtype=dtype, device=rows.device).index_add(0, ids, counts)
    empty = torch.nonzero(dom_cnt == 0).flatten().tolist()
    if empty:
        raise ValueError(f"domain(s) {empty} have no supervised token in this batch (labels all -100)")
    return dom_sum / dom_cnt
