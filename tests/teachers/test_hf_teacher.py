"""The HF teacher: rejection sampling and set dropping with scripted completions, then the real generation path."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.isomers import build_suite, make_config
from iga.isomers.record import SPLITS
from iga.teachers import hf as hf_module
from iga.teachers.dataset import distill, select_cots, selection_counts
from iga.teachers.hf import HFTeacher, SamplingConfig, generate_samples
from iga.utils.io import read_jsonl, sha256_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TRAIN_DOMAINS = ["math", "medicine", "law", "science"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """2 skeletons (S01: int answers, S06: yes/no) × 3 training sets × 4 domains = 24 training records."""
    out = tmp_path_factory.mktemp("data")
    build_suite(make_config("tiny", skeletons=["S01", "S06"]), out, seed=0)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data_dir):
    """A tiny random Llama and a BPE tokenizer trained on the suite's text, saved as a checkpoint folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from iga.models.prompting import PromptFormat
    from iga.models.tokenizer import train_bpe_tokenizer

    texts = [PromptFormat().text(r) for r in read_jsonl(data_dir / "train.jsonl")]
    tokenizer = train_bpe_tokenizer(texts * 3, vocab_size=400)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    out = tmp_path_factory.mktemp("teacher")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def correct(record: dict, tag: str = "work") -> str:
    return f"Step 1: {tag}.\nThe answer is {record['answer']}."


def wrong(record: dict) -> str:
    if record["answer_type"] == "int":
        return f"Step 1: slip.\nThe answer is {int(record['answer']) + 1}."
    return f"Step 1: slip.\nThe answer is {'yes' if record['answer'] == 'no' else 'no'}."


def script(record: dict) -> list[str]:
    """Two candidates per record; the comments give what the teacher must do with them."""
    rid, iid = record["id"], record["instance_id"]
    if iid == "S06-train-00000":  # two correct samples: the first is kept
        return [correct(record, "first"), correct(record, "second")]
    if rid == "S01-train-00001-medicine":  # no correct sample: the whole set S01-train-00001 goes
        return [wrong(record), wrong(record)]
    if rid == "S06-train-00001-law":  # no answer can be extracted: rejected, set S06-train-00001 goes
        return ["I cannot say.", "Maybe so."]
    return [wrong(record), correct(record)]  # wrong first: rejected, the second is kept


def test_rejection_sampling_keeps_first_correct_and_drops_incomplete_sets(
    data_dir, model_dir, tmp_path, monkeypatch
):
    calls = []

    def scripted(model, tokenizer, records, *, sampling, fmt, progress):
        calls.append(sampling)
        return [script(r) for r in records]

    monkeypatch.setattr(hf_module, "generate_samples", scripted)
    sampling = SamplingConfig(samples=2, temperature=0.7, seed=3, max_new_tokens=32, batch_size=5)
    teacher = HFTeacher.load(model_dir, sampling=sampling, device="cpu")
    out = tmp_path / "distilled"
    manifest = distill(data_dir, out, teacher, progress=False)

    assert calls == [sampling]
    source = read_jsonl(data_dir / "train.jsonl")
    dropped_sets = {"S01-train-00001", "S06-train-00001"}
    rows = read_jsonl(out / "train.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in source if r["instance_id"] not in dropped_sets]
    by_id = {r["id"]: r for r in source}
    for row in rows:
        src = by_id[row["id"]]
        expected_cot = correct(src, "first") if src["instance_id"] == "S06-train-00000" else correct(src)
        assert row == {**src, "teacher_cot": expected_cot, "cot_source": str(model_dir.resolve())}

    counts = manifest["counts"]
    # 24 records: 2 rejected, their 2 sets (8 records) dropped; 48 samples: 4 records have 2 correct ones,
    # 2 have none, 18 have one → 26 correct.
    assert {
        k: counts[k]
        for k in (
            "records",
            "records_rejected",
            "records_dropped",
            "records_kept",
            "sets",
            "sets_dropped",
            "sets_kept",
            "samples",
            "samples_correct",
            "samples_wrong",
        )
    } == {
        "records": 24,
        "records_rejected": 2,
        "records_dropped": 8,
        "records_kept": 16,
        "sets": 6,
        "sets_dropped": 2,
        "sets_kept": 4,
        "samples": 48,
        "samples_correct": 26,
        "samples_wrong": 22,
    }
    assert counts["acceptance_rate"] == pytest.approx(22 / 24, abs=1e-6)
    assert counts["sample_accuracy"] == pytest.approx(26 / 48, abs=1e-6)
    assert counts["kept_rate"] == pytest.approx(16 / 24, abs=1e-6)
    for skeleton in ("S01_arith_chain", "S06_mp_chain"):
        assert counts["by_skeleton"][skeleton] == {
            "records": 12,
            "records_rejected": 1,
            "records_dropped": 4,
            "sets": 3,
            "sets_dropped": 1,
        }
    assert counts["by_domain"] == {
        "law": {"records": 6, "records_rejected": 1, "records_dropped": 2},
        "math": {"records": 6, "records_rejected": 0, "records_dropped": 2},
        "medicine": {"records": 6, "records_rejected": 1, "records_dropped": 2},
        "science": {"records": 6, "records_rejected": 0, "records_dropped": 2},
    }

    assert manifest["teacher"]["kind"] == "hf"
    assert manifest["teacher"]["path"] == str(model_dir.resolve())
    assert manifest["teacher"]["config_sha256"] == sha256_file(model_dir / "config.json")
    assert manifest["sampling"] == {
        "decoding": "sample",
        "samples": 2,
        "temperature": 0.7,
        "seed": 3,
        "max_new_tokens": 32,
        "batch_size": 5,
        "top_k": 0,
        "top_p": 1.0,
        "prompt_template": "Q: {question}\nA:\n",
    }
    source_manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["source"]["content_hash"] == source_manifest["content_hash"]
    assert json.loads((out / "manifest.json").read_text()) == manifest

    # The folder is a training data dir: complete isomer sets over the training domains.
    from iga.training.data import group_isomer_sets

    sets = group_isomer_sets(rows, TRAIN_DOMAINS)
    assert [s.instance_id for s in sets] == [
        "S01-train-00000",
        "S01-train-00002",
        "S06-train-00000",
        "S06-train-00002",
    ]
    for split in SPLITS[1:]:
        assert (out / f"{split}.jsonl").read_bytes() == (data_dir / f"{split}.jsonl").read_bytes()


candidates_strategy = st.lists(st.booleans(), min_size=0, max_size=3)


@settings(max_examples=60, deadline=None)
@given(sets=st.lists(st.lists(candidates_strategy, min_size=1, max_size=4), min_size=1, max_size=6))
def test_selection_invariants(sets):
    """Random sets of records with random correct/wrong candidate lists (True = correct)."""
    records, candidates, verdicts = [], [], []
    for i, members in enumerate(sets):
        for k, flags in enumerate(members):
            rec = {
                "id": f"{i}-{k}",
                "instance_id": f"set{i}",
                "skeleton": f"S{i % 2}",
                "domain": f"d{k}",
                "answer": str(10 + k),
                "answer_type": "int",
            }
            records.append(rec)
            candidates.append(
                [
                    f"c{j}\nThe answer is {int(rec['answer']) + (0 if ok else 1)}."
                    for j, ok in enumerate(flags)
                ]
            )
            verdicts.append(flags)
    sel = select_cots(records, candidates)
    for cot, cands, flags in zip(sel.accepted, candidates, verdicts, strict=True):
        assert cot == (cands[flags.index(True)] if True in flags else None)
    for rec, kept in zip(records, sel.kept, strict=True):
        members = [
            f for r, f in zip(records, verdicts, strict=True) if r["instance_id"] == rec["instance_id"]
        ]
        assert kept == all(True in f for f in members)
    counts = selection_counts(records, sel)
    assert counts["samples"] == sum(map(len, verdicts))
    assert counts["samples_correct"] == sum(map(sum, verdicts))
    assert counts["records_kept"] + counts["records_dropped"] == counts["records"] == len(records)
    assert counts["sets_kept"] + counts["sets_dropped"] == counts["sets"] == len(sets)
    assert counts["records_rejected"] <= counts["records_dropped"]
    for key in ("records", "records_rejected", "records_dropped"):
        assert sum(c[key] for c in counts["by_domain"].values()) == counts[key]
        assert sum(c[key] for c in counts["by_skeleton"].values()) == counts[key]
    assert sum(c["sets_dropped"] for c in counts["by_skeleton"].values()) == counts["sets_dropped"]


def test_teacher_must_return_one_candidate_list_per_record():
    with pytest.raises(ValueError, match="candidates for 1 records, expected 2"):
        select_cots([{"instance_id": "a", "answer": "1", "answer_type": "int"}] * 2, [["The answer is 1."]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": 2}, "samples=2 needs temperature > 0"),
        ({"samples": 0, "temperature": 1.0}, "samples: must be an integer ≥ 1"),
        ({"batch_size": True}, "batch_size: must be an integer ≥ 1"),
        ({"temperature": -0.5}, "temperature: must be ≥ 0"),
    ],
)
def test_sampling_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kwargs)


def test_load_errors(tmp_path, model_dir):
    with pytest.raises(FileNotFoundError, match="model path does not exist"):
        HFTeacher.load(tmp_path / "nope")
    bare = tmp_path / "no_tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(ValueError, match="no usable tokenizer"):
        HFTeacher.load(bare, device="cpu")


@pytest.fixture(scope="module")
def teacher(model_dir):
    return HFTeacher.load(model_dir, device="cpu")


def test_real_sampling_is_seeded_truncated_and_leaves_the_global_rng_alone(teacher, data_dir):
    import torch

    records = read_jsonl(data_dir / "train.jsonl")[:5]

    def run(seed: int) -> list[list[str]]:
        cfg = SamplingConfig(samples=2, temperature=1.0, max_new_tokens=6, batch_size=3, seed=seed)
        return generate_samples(teacher.model, teacher.tokenizer, records, sampling=cfg, progress=False)

    state = torch.get_rng_state()
    first = run(0)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(first) == 5 and all(len(s) == 2 for s in first)
    assert run(0) == first
    assert run(1) != first
    assert any(a != b for a, b in first)  # the two samples of a prompt are independent draws


def test_greedy_is_the_evaluator_generation(teacher, data_dir):
    from iga.evaluation.generation import generate_completions

    records = read_jsonl(data_dir / "train.jsonl")[:4]
    cfg = SamplingConfig(max_new_tokens=6, batch_size=3)
    got = generate_samples(teacher.model, teacher.tokenizer, records, sampling=cfg, progress=False)
    expected = generate_completions(
        teacher.model, teacher.tokenizer, records, max_new_tokens=6, batch_size=3, progress=False
    )
    assert got == [[c] for c in expected]


def test_cli_runs_the_real_generation_end_to_end(data_dir, model_dir, tmp_path):
    from typer.testing import CliRunner

    from iga.commands.teach import app

    out = tmp_path / "taught"
    result = CliRunner().invoke(
        app,
        [
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--teacher",
            str(model_dir),
            "--samples",
            "2",
            "--temperature",
            "1.0",
            "--max-new-tokens",
            "6",
            "--batch-size",
            "8",
            "--seed",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["samples"] == 48 and counts["records"] == 24
    assert counts["records_kept"] == len(read_jsonl(out / "train.jsonl"))
    assert manifest["sampling"]["seed"] == 7 and manifest["teacher"]["model_type"] == "llama"
