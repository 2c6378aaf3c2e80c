"""Synthetic isomer data for trainer tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
from pathlib import Path

DOMAINS = ("math", "medicine", "law", "science")
NOUNS = {"math": "units", "medicine": "tablets", "law": "fines", "science": "grams"}


def synthetic_records(n_sets: int, split: str = "train", domains=DOMAINS) -> list[dict]:
    records = []
    for i in range(n_sets):
        a, b = i % 7 + 1, (3 * i) % 5 + 1
        for d in domains:
            noun = NOUNS.get(d, "things")
            cot = f"Step 1: {a} + {b} = {a + b} {noun}.\nThe answer is {a + b}."
            records.append(
                {
                    "id": f"{split}-{i}-{d}",
                    "instance_id": f"{split}-{i}",
                    "skeleton": "S01_arith_chain",
                    "family": "IsoArith",
                    "domain": d,
                    "split": split,
                    "question": f"There are {a} {noun} and {b} more {noun}. How many {noun}?",
                    "gold_cot": cot,
                    "answer": str(a + b),
                    "answer_type": "int",
                    "label_space": [],
                    "anchors": [cot.index("\n"), cot.index("The answer")],
                }
            )
    return records


def write_dataset(root: Path, n_train: int = 8, n_eval: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("id_test", n_eval), ("ood_surface", n_eval), ("ood_depth", n_eval)):
        domains = DOMAINS if split in ("train",) else (*DOMAINS, "finance")
        rows = synthetic_records(n, split, domains)
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "manifest.json").write_text(json.dumps({"content_hash": "synthetic", "seed": 0}))
    return root


def save_micro_base(out: Path) -> Path:
    """A micro Llama + BPE tokenizer saved as a base folder in ``out`` (what `iga pretrain` writes), no pretraining."""
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer

    texts = [
        r["question"] + "\n" + r["gold_cot"] for r in synthetic_records(20, domains=(*DOMAINS, "finance"))
    ]
    tok = train_bpe_tokenizer(texts * 5, vocab_size=320)
    model = build_student("micro", tok, seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
