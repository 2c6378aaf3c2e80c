"""What the IGA trainers refuse or turn off, each with a message naming the setting."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from iga import IGAConfig, create_iga_optimizer
from iga.integrations import IGATrainer, isomer_dataset
from iga.integrations.hf_trainer import check_training_args

DOMAINS = ["math", "medicine", "law", "science"]


@pytest.fixture()
def student(micro_base):
    from iga.models.lora import attach_lora
    from iga.models.pretrain import load_base

    model, tok = load_base(micro_base)
    for p in model.parameters():
        p.requires_grad_(False)
    return attach_lora(model, r=4, alpha=8, init="gaussian"), tok


@pytest.fixture()
def dataset(iso_records, student):
    return isomer_dataset(iso_records, DOMAINS, tokenizer=student[1], tokenize=True, max_length=96)


def _args(tmp_path, **kw) -> TrainingArguments:
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=1, use_cpu=True,
                report_to="none", save_strategy="no", disable_tqdm=True, remove_unused_columns=False)  # fmt: skip
    return TrainingArguments(**{**base, **kw})


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("fp16", True, "GradScaler"),
        ("label_smoothing_factor", 0.1, "label smoothing"),
        ("use_liger_kernel", True, "fused linear cross-entropy"),
        ("deepspeed", "ds.json", "DeepSpeed"),
        ("fsdp", "full_shard", "FSDP"),
    ],
)
def test_settings_that_break_iga_are_refused(tmp_path, setting, value, match):
    args = _args(tmp_path)
    setattr(
        args, setting, value
    )  # set after construction: some are refused by TrainingArguments itself on CPU
    with pytest.raises(ValueError, match=f"TrainingArguments.{setting}=.*{match}"):
        check_training_args(args)


def test_multi_process_runs_are_refused_until_ranks_share_the_iga_update(tmp_path, monkeypatch):
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match=r"world_size=2 .* ranks would drift apart"):
        check_training_args(_args(tmp_path))


def test_remove_unused_columns_is_turned_off_with_a_warning(tmp_path):
    args = _args(tmp_path, remove_unused_columns=True)
    with pytest.warns(UserWarning, match="remove_unused_columns=False"):
        check_training_args(args)
    assert args.remove_unused_columns is False


def test_trainer_moves_clipping_after_the_rewrite_and_refuses_misfits(tmp_path, student, dataset):
    model, tok = student
    trainer = IGATrainer(model=model, args=_args(tmp_path, max_grad_norm=0.5, remove_unused_columns=False),
                         train_dataset=dataset, processing_class=tok)  # fmt: skip
    assert trainer.args.max_grad_norm == 0.0 and trainer.iga_config.max_grad_norm == 0.5
    assert trainer.num_domains == 4 and trainer.domain_names == DOMAINS
    with pytest.raises(ValueError, match="must be a multiple of the 4 domains"):
        IGATrainer(model=model, args=_args(tmp_path, per_device_train_batch_size=6), train_dataset=dataset,
                   processing_class=tok)  # fmt: skip
    with pytest.raises(ValueError, match="compute_loss_func"):
        IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok,
                   compute_loss_func=lambda *a, **k: 0)  # fmt: skip
    optimizer = create_iga_optimizer(model, lr=1e-3)
    with pytest.raises(ValueError, match=r"either optimizers=.* or iga_config"):
        IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok,
                   optimizers=(optimizer, None), iga_config=IGAConfig())  # fmt: skip
    with pytest.raises(TypeError, match="need an IGAOptimizer"):
        IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok,
                   optimizers=(torch.optim.SGD(model.parameters(), lr=0.1), None))  # fmt: skip


def test_packed_and_padding_free_batches_are_refused(tmp_path, student, dataset):
    from transformers import DataCollatorWithFlattening

    model, tok = student
    with pytest.raises(ValueError, match="DataCollatorWithFlattening packs"):
        IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok,
                   data_collator=DataCollatorWithFlattening())  # fmt: skip
    trainer = IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok)
    trainer.create_optimizer()
    batch = trainer.data_collator([dataset[i] for i in range(8)])
    width = batch["input_ids"].shape[1]
    packed = torch.cat([torch.arange(width // 2), torch.arange(width - width // 2)]).expand(8, -1)
    with pytest.raises(ValueError, match="restarts at 0 inside the row"):
        trainer.training_step(model, {**batch, "position_ids": packed})


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("packing", True, "packing concatenates"),
        ("padding_free", True, "padding-free batches flatten"),
        ("loss_type", "dft", "loss_type='nll'"),
    ],
)
def test_sft_settings_that_break_iga_are_refused(tmp_path, student, dataset, setting, value, match):
    pytest.importorskip("trl")
    from trl import SFTConfig

    from iga.integrations import IGASFTTrainer

    config = SFTConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        remove_unused_columns=False,
        **{setting: value},
    )
    with pytest.raises(ValueError, match=f"SFTConfig.{setting}=.*{match}"):
        IGASFTTrainer(model=student[0], args=config, train_dataset=dataset, processing_class=student[1])
    with pytest.raises(ValueError, match="needs an SFTConfig"):
        IGASFTTrainer(model=student[0], args=_args(tmp_path), train_dataset=dataset)
