"""Distil chain-of-thought into a LoRA student with IGA through 🤗 ``transformers.Trainer``.

    # CPU, seconds: a random micro Llama, a tokenizer trained here, the embedded `tiny` isomer sets
    python examples/hf_trainer_iga.py --tiny --out runs/hf-iga-tiny

    # your model and your isomer sets (a folder from `iga data build` / `iga data import`)
    python examples/hf_trainer_iga.py --model /path/to/Qwen2.5-0.5B-Instruct --data runs/data \\
        --out runs/hf-iga --steps 300 --sets-per-batch 2 --lr 5e-4 --tau 10 --bf16

What IGA needs from the Trainer is in ``IGATrainer`` (iga.integrations.hf_trainer): whole isomer sets per batch,
``domain_id`` kept, the per-domain mean objective, clipping after the IGA rewrite. Everything else is plain
``TrainingArguments``. The adapter is saved to ``<out>/adapter``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TRAIN_DOMAINS = ["math", "medicine", "law", "science"]


def tiny_setup() -> tuple[Any, Any, list[dict]]:
    """(random micro Llama, BPE tokenizer trained on the records, the `tiny` suite's training records)."""
    import torch

    from iga.isomers import generate_records
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    torch.set_num_threads(1)  # a micro model: thread start-up costs more than it saves
    records = generate_records("tiny")["train"]
    tokenizer = train_bpe_tokenizer([r["question"] + "\n" + r["gold_cot"] for r in records], vocab_size=512)
    return build_student("micro", tokenizer, seed=0), tokenizer, records


def local_setup(model_path: str, data_dir: str) -> tuple[Any, Any, list[dict]]:
    """(model, tokenizer, training records) from a local HF checkpoint and a built isomer suite."""
    from pathlib import Path

    from iga.models.students import load_causal_lm
    from iga.models.tokenizer import load_tokenizer
    from iga.utils.io import read_jsonl

    return load_causal_lm(model_path), load_tokenizer(model_path), read_jsonl(Path(data_dir) / "train.jsonl")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help="random micro model + embedded tiny data (CPU, seconds)"
    )
    parser.add_argument("--model", help="local Hugging Face checkpoint folder")
    parser.add_argument("--data", help="built isomer suite folder (train.jsonl)")
    parser.add_argument("--out", default="runs/hf-iga")
    parser.add_argument("--steps", type=int, default=None, help="default: 6 with --tiny, else 300")
    parser.add_argument("--sets-per-batch", type=int, default=2)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None, help="default: 2e-3 with --tiny, else 5e-4")
    parser.add_argument("--tau", type=float, default=10.0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--prompt-format", choices=["auto", "plain", "chat"], default="auto")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.tiny == bool(args.model and args.data):
        parser.error("pass either --tiny or both --model and --data")

    import torch
    from transformers import TrainingArguments

    from iga import IGAConfig
    from iga.integrations import IGATrainer, isomer_dataset
    from iga.models.lora import attach_lora

    torch.manual_seed(args.seed)  # LoRA init
    model, tokenizer, records = tiny_setup() if args.tiny else local_setup(args.model, args.data)
    for p in model.parameters():
        p.requires_grad_(False)
    model = attach_lora(model, r=args.rank, alpha=2 * args.rank, dropout=0.0, target_modules="all-linear")
    train_dataset = isomer_dataset(
        records,
        TRAIN_DOMAINS,
        tokenizer=tokenizer,
        prompt_format=args.prompt_format,
        tokenize=True,
        max_length=args.max_length,
    )
    training_args = TrainingArguments(
        output_dir=args.out,
        per_device_train_batch_size=args.sets_per_batch * len(TRAIN_DOMAINS),  # rows: whole isomer sets
        gradient_accumulation_steps=args.grad_accum,
        max_steps=args.steps or (6 if args.tiny else 300),
        learning_rate=args.lr or (2e-3 if args.tiny else 5e-4),
        lr_scheduler_type="cosine",
        warmup_steps=1 if args.tiny else 20,
        max_grad_norm=1.0,  # moved into IGAConfig by IGATrainer: clipping happens after the IGA rewrite
        logging_steps=1 if args.tiny else 10,
        save_strategy="no" if args.tiny else "steps",
        save_steps=100,
        bf16=args.bf16,
        activation_checkpointing=args.gradient_checkpointing,  # transformers 5.24's name for gradient_checkpointing
        use_cpu=args.tiny or not torch.cuda.is_available(),
        report_to="none",
        remove_unused_columns=False,  # keep domain_id for the collator
        seed=args.seed,
        disable_tqdm=args.tiny,
    )
    trainer = IGATrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        iga_config=IGAConfig(tau=args.tau),
    )
    result = trainer.train()
    model.save_pretrained(os.path.join(args.out, "adapter"))
    last = trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else {}
    print(
        f"trained {result.global_step} steps; last loss {last.get('loss', float('nan')):.4f}, "
        f"mask mean {last.get('iga/mask_mean', float('nan')):.3f}; adapter in {args.out}/adapter"
    )
    return {"log_history": trainer.state.log_history, "global_step": result.global_step, "out": args.out}


if __name__ == "__main__":
    main()
