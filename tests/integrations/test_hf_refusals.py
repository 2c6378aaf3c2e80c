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


def _two_ranks(monkeypatch) -> None:
    # What TrainingArguments reports under `torchrun --nproc_per_node 2` (the real 2-process run is
    # tests/distributed/test_ddp_hf_trainer.py).
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))


def test_ddp_is_accepted_but_not_data_options_that_cut_isomer_sets(tmp_path, monkeypatch):
    _two_ranks(monkeypatch)
    check_training_args(_args(tmp_path))  # plain DDP: no error
    for option, match in [("split_batches", "row slices"), ("dispatch_batches", "deal out row slices")]:
        args = _args(tmp_path, accelerator_config={option: True})
        with pytest.raises(ValueError, match=f"accelerator_config.{option}=True .* under DDP .*{match}"):
            check_training_args(args)


def test_split_batches_is_harmless_in_one_process(tmp_path):
    check_training_args(_args(tmp_path, accelerator_config={"split_batches": True}))


def test_a_multi_process_launch_seen_as_one_process_is_refused(tmp_path, monkeypatch):
    args = _args(tmp_path)  # built first: under WORLD_SIZE=2 Accelerate would try to join a process group
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun's environment, but TrainingArguments sees one process
    with pytest.raises(ValueError, match=r"WORLD_SIZE=2 processes but TrainingArguments.world_size=1"):
        check_training_args(args)


def test_parallelism_config_is_refused(tmp_path):
    from accelerate.parallelism_config import ParallelismConfig

    args = _args(tmp_path)
    args.parallelism_config = ParallelismConfig(tp_size=2)  # set after construction: needs 2 ranks to build
    with pytest.raises(
        ValueError, match=r"parallelism_config=ParallelismConfig\(\.\.\.\) is not supported: .* plain DDP"
    ):
        check_training_args(args)


def test_under_ddp_the_epoch_is_a_multiple_of_accumulation_times_ranks(
    tmp_path, monkeypatch, student, dataset
):
    from iga.integrations.callbacks import SamplerEpochCallback

    _two_ranks(monkeypatch)
    model, tok = student
    trainer = IGATrainer(model=model, args=_args(tmp_path, per_device_train_batch_size=4,
                                                 gradient_accumulation_steps=2),
                         train_dataset=dataset, processing_class=tok)  # fmt: skip
    # 6 sets, one per batch: 6 batches, rounded up to a multiple of 2 micro-batches × 2 ranks = 8 (4 per rank,
    # 2 optimizer steps each).
    assert trainer.isomer_sampler.batches_multiple_of == 4 and len(trainer.isomer_sampler) == 8
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, SamplerEpochCallback)]
    assert callback.sampler is trainer.isomer_sampler and callback.steps_per_epoch == 2


def test_sharding_backends_chosen_through_accelerate_launch_are_refused(
    tmp_path, monkeypatch, student, dataset
):
    # `accelerate launch --use_fsdp` configures the Accelerator from the environment; TrainingArguments.fsdp stays
    # empty, so the trainer checks the Accelerator itself.
    from accelerate import Accelerator

    model, tok = student
    trainer = IGATrainer(model=model, args=_args(tmp_path), train_dataset=dataset, processing_class=tok)
    monkeypatch.setattr(Accelerator, "distributed_type", property(lambda self: "FSDP"))
    with pytest.raises(ValueError, match="algorithm 'iga' cannot run under FSDP"):
        trainer._iga_init(None)


def test_sampler_epoch_follows_the_optimizer_steps_on_a_resume(student, dataset):
    from types import SimpleNamespace

    from iga.integrations import IsomerSetBatchSampler
    from iga.integrations.callbacks import SamplerEpochCallback

    sampler = IsomerSetBatchSampler.from_dataset(dataset, rows_per_batch=4, batches_multiple_of=4)
    callback = SamplerEpochCallback(sampler, steps_per_epoch=2)
    for global_step, epoch in [(0, 0), (2, 1), (3, 1), (7, 3)]:  # step 3: resumed inside the second epoch
        callback.on_epoch_begin(None, SimpleNamespace(global_step=global_step), None)
        assert sampler.epoch == epoch
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        SamplerEpochCallback(sampler, steps_per_epoch=0)


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
