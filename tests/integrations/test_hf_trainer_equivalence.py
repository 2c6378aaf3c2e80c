"""IGA through transformers.Trainer / TRL's SFTTrainer gives the same LoRA update as `iga train` on the same
batches (micro random Llama, float32), with accumulation, activation checkpointing and checkpoint resume.

The comparisons include the logged loss and IGA's pre-clip gradient norm, because Adam's update is nearly blind
to a constant gradient scale; the clip threshold is below the gradient norm so clipping is active, and a
negative control shows that clipping at the wrong place would change the weights.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from iga.config import TrainConfig
from iga.training.loop import train
from iga.training.run import prepare_run

TAU, CLIP = 5.0, 0.02


def _cfg(iso_data, micro_base, out, *, grad_accum: int = 1) -> TrainConfig:
    return TrainConfig(
        data_dir=str(iso_data), out_dir=str(out), base_dir=str(micro_base), algorithm="iga",
        algorithm_options={"tau": TAU}, steps=3, sets_per_batch=2 * grad_accum, grad_accum=grad_accum, lr=1e-2,
        warmup_steps=0, schedule="constant", max_grad_norm=CLIP, max_length=96, log_every=1, checkpoint_every=100,
        lora={"r": 4, "alpha": 8, "init": "gaussian"}, cpu=True,
    )  # fmt: skip


def _ours(cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[dict]]:
    """(start weights, weights after `iga train`, its log rows)."""
    start = _lora(_fresh_student(cfg)[0])
    out = train(cfg, progress=False)
    rows = [json.loads(line) for line in (Path(cfg.out_dir) / "log.jsonl").read_text().splitlines()]
    return start, _lora(out["model"]), rows


def _lora(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def _fresh_student(cfg: TrainConfig):
    """The model `iga train` starts from (same seed, same LoRA init), without its capture."""
    run = prepare_run(cfg)
    run.capture.detach()
    return run.accelerator.unwrap_model(run.model), run.tokenizer


def _dataset(cfg: TrainConfig, tokenizer):
    from iga.integrations import load_isomer_dataset

    return load_isomer_dataset(cfg.data_dir, "train", cfg.train_domains, tokenizer=tokenizer,
                               prompt_format="plain", tokenize=True, max_length=cfg.max_length)  # fmt: skip


def _args(cls, out, cfg: TrainConfig, **kw):
    base = dict(
        output_dir=str(out), per_device_train_batch_size=cfg.sets_per_batch // cfg.grad_accum * 4,
        gradient_accumulation_steps=cfg.grad_accum, max_steps=cfg.steps, learning_rate=cfg.lr,
        lr_scheduler_type="constant", max_grad_norm=cfg.max_grad_norm, optim="adamw_torch", seed=cfg.seed,
        use_cpu=True, report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
        remove_unused_columns=False,
    )  # fmt: skip
    base.update(kw)
    return cls(**base)


def _hf_trainer(cfg, out, *, optimizers=None, **kw):
    from transformers import TrainingArguments

    from iga import IGAConfig
    from iga.integrations import IGATrainer

    model, tok = _fresh_student(cfg)
    extra = {"optimizers": optimizers(model, cfg)} if optimizers else {"iga_config": IGAConfig(tau=TAU)}
    return IGATrainer(model=model, args=_args(TrainingArguments, out, cfg, **kw), train_dataset=_dataset(cfg, tok),
                      processing_class=tok, **extra)  # fmt: skip


def _assert_same_run(ours, trainer, *, rtol: float, update_rtol: float | None = None) -> None:
    """Elementwise ``rtol`` on the weights and the logged numbers; or, with ``update_rtol``, the weights' change
    from their common start compared per tensor in norm (Adam's first steps are ≈ lr·sign(g), so a coordinate
    whose gradient is ~0 flips on rounding noise while the gradients agree to ``rtol``)."""
    start, weights, rows = ours
    theirs = _lora(trainer.model)
    assert weights.keys() == theirs.keys() and len(weights) == 28  # 2 blocks × 7 linear layers × (A, B)
    for name in weights:
        if update_rtol is None:
            torch.testing.assert_close(theirs[name], weights[name], rtol=rtol, atol=rtol / 10, msg=name)
        else:
            update = weights[name] - start[name]
            assert float((theirs[name] - weights[name]).norm() / update.norm()) < update_rtol, name
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == [r["step"] for r in rows] == [1, 2, 3]
    for row, log in zip(rows, logs, strict=True):
        for ours_key, their_key in [("loss", "loss"), ("loss/law", "loss/law"), ("grad_norm", "iga/grad_norm"),
                                    ("mask_mean", "iga/mask_mean"), ("vhat_mean", "iga/vhat_mean")]:  # fmt: skip
            assert log[their_key] == pytest.approx(row[ours_key], rel=max(rtol, 1e-6)), their_key


@pytest.fixture(scope="module")
def ours(iso_data, micro_base, tmp_path_factory):
    cfg = _cfg(iso_data, micro_base, tmp_path_factory.mktemp("ours"))
    result = _ours(cfg)
    assert max(r["grad_norm"] for r in result[2]) > CLIP  # clipping after the rewrite is exercised
    return cfg, result


def _create_optimizers(model, cfg):
    from iga import create_iga_optimizer
    from iga.training.schedule import build_scheduler

    optimizer = create_iga_optimizer(model, lr=cfg.lr, tau=TAU)  # max_grad_norm comes from TrainingArguments
    return optimizer, build_scheduler(optimizer, warmup_steps=0, total_steps=cfg.steps, schedule="constant")


CHECKPOINTING = {
    "checkpointing_non_reentrant": {"activation_checkpointing": True,
                                    "activation_checkpointing_kwargs": {"use_reentrant": False}},
    "checkpointing_reentrant": {"activation_checkpointing": True,
                                "activation_checkpointing_kwargs": {"use_reentrant": True}},
}  # fmt: skip


@pytest.mark.parametrize("variant", ["trainer_builds_optimizer", "optimizers_passed_in", *CHECKPOINTING])
def test_trainer_matches_iga_train(ours, tmp_path, variant):
    cfg, result = ours
    optimizers = _create_optimizers if variant == "optimizers_passed_in" else None
    trainer = _hf_trainer(cfg, tmp_path, optimizers=optimizers, **CHECKPOINTING.get(variant, {}))
    assert (
        trainer.args.max_grad_norm == 0 and trainer.iga_config.max_grad_norm == CLIP
    )  # clip moved after IGA
    trainer.train()
    assert trainer.model.get_base_model().is_activation_checkpointing == (variant in CHECKPOINTING)
    _assert_same_run(result, trainer, rtol=1e-6)


def test_clipping_before_the_rewrite_would_change_the_update(ours, tmp_path):
    from iga import IGAConfig

    cfg, (_, weights, _) = ours
    trainer = _hf_trainer(
        cfg, tmp_path, max_grad_norm=0.0
    )  # what clipping the raw .grad amounts to: no IGA clip
    assert trainer.iga_config == IGAConfig(tau=TAU)
    trainer.train()
    theirs = _lora(trainer.model)
    assert max(float((theirs[n] - weights[n]).abs().max()) for n in weights) > 1e-4


def test_gradient_accumulation_matches_iga_train(iso_data, micro_base, tmp_path):
    cfg = _cfg(iso_data, micro_base, tmp_path / "ours", grad_accum=2)
    result = _ours(cfg)
    trainer = _hf_trainer(cfg, tmp_path / "hf")
    assert trainer.args.per_device_train_batch_size == 8 and len(trainer.isomer_sampler) % 2 == 0
    trainer.train()
    _assert_same_run(result, trainer, rtol=1e-6)


def test_sft_trainer_matches_iga_train(ours, tmp_path):
    pytest.importorskip("trl")
    from trl import SFTConfig

    from iga import IGAConfig
    from iga.integrations import IGASFTTrainer

    cfg, result = ours
    model, tok = _fresh_student(cfg)
    args = _args(SFTConfig, tmp_path, cfg, bf16=False, activation_checkpointing=False)
    trainer = IGASFTTrainer(model=model, args=args, train_dataset=_dataset(cfg, tok), processing_class=tok,
                            iga_config=IGAConfig(tau=TAU))  # fmt: skip
    trainer.train()
    # TRL's fused LM head computes the token log-probabilities in chunks: same maths, other rounding.
    _assert_same_run(result, trainer, rtol=1e-5, update_rtol=1e-3)


def test_resume_from_a_trainer_checkpoint_is_exact(iso_data, micro_base, tmp_path):
    from iga import IGAConfig
    from iga.integrations import IGATrainer

    # 6 sets, 2 per step: 3 steps per epoch, so the checkpoint at step 4 is inside the second epoch.
    cfg = _cfg(iso_data, micro_base, tmp_path / "unused").model_copy(update={"steps": 6})

    def trainer(out):
        from transformers import TrainingArguments

        model, tok = _fresh_student(cfg)
        args = _args(TrainingArguments, out, cfg, lr_scheduler_type="cosine", warmup_steps=1, save_strategy="steps",
                     save_steps=4)  # fmt: skip
        return IGATrainer(model=model, args=args, train_dataset=_dataset(cfg, tok), processing_class=tok,
                          iga_config=IGAConfig(tau=TAU, mask_stat="variance", ema_beta=0.5))  # fmt: skip

    full = trainer(tmp_path / "full")
    full.train()
    resumed = trainer(tmp_path / "resumed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert resumed.iga_optimizer.state_dict()["iga"]["step"] == 6  # IGA's counters and EMA came back
    a, b = _lora(full.model), _lora(resumed.model)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


def test_trainer_writes_the_run_folders_result_json(ours, tmp_path):
    """IGATrainer records its run like `iga train`: result.json (RunFolder's name and layout) in output_dir, with
    the options in force, the data, the steps and provenance."""
    import json

    from iga.runs.folder import RunFolder

    cfg, _ = ours
    trainer = _hf_trainer(cfg, tmp_path)
    trainer.train()
    result = json.loads(RunFolder(tmp_path).result.read_text())
    assert result["algorithm"] == "iga"
    assert result["iga_config"]["tau"] == TAU and result["iga_config"]["max_grad_norm"] == CLIP
    assert (
        result["data"]["rows"] == len(trainer.train_dataset)
        and result["data"]["domains"] == trainer.domain_names
    )
    assert result["data"]["isomer_sets"] * len(trainer.domain_names) == result["data"]["rows"]
    assert result["train"]["steps"] == cfg.steps == 3
    assert result["train"]["last_log"]["step"] == 3 and "loss/law" in result["train"]["last_log"]
    assert result["train"]["train_runtime"] > 0
    assert result["trainer"]["class"] == "IGATrainer" and result["trainer"]["args"]["max_steps"] == cfg.steps
    assert {"git", "versions", "hardware"} <= set(result["provenance"])
