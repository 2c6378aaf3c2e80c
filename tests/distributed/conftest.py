"""Launching the 2-process workers: once per test session (shared by pytest-xdist workers through a file lock)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def _gloo_available() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Under xdist every worker has its own basetemp inside the session's folder; share the session's folder.
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def launch_once(tmp_path_factory: pytest.TempPathFactory, mode: str, prepare=None) -> Path:
    """Run ``torchrun --standalone --nproc_per_node 2 ddp_worker.py MODE OUT [args]`` once per session; OUT."""
    if not _gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    from filelock import FileLock

    out = _shared_root(tmp_path_factory) / f"ddp-{mode}"
    with FileLock(str(out) + ".lock"):
        done = out / "DONE"
        if done.exists():
            return out
        out.mkdir(exist_ok=True)
        args = prepare(out) if prepare is not None else []
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            mode,
            str(out),
            *args,
        ]
        proc = subprocess.run(cmd, env=env, cwd=WORKER.parent, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            # torchrun's own report is long and says little; the ranks' tracebacks are prefixed "[rankN]:".
            ranks = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank"))
            pytest.fail(
                f"2-process worker failed (rc {proc.returncode}):\n{ranks[-6000:] or proc.stderr[-6000:]}"
            )
        done.touch()
    return out


def _trainer_inputs(out: Path) -> list[str]:
    """A tiny IsoBench suite and a micro base (untrained Llama + BPE tokenizer), as `iga pretrain` would write."""
    from iga.isomers.build import build_suite
    from iga.models.students import build_student
    from iga.models.tokenizer import train_bpe_tokenizer
    from iga.utils.io import read_jsonl

    data, base = out / "data", out / "base"
    build_suite("tiny", data)
    tok = train_bpe_tokenizer(
        [r["question"] + "\n" + r["gold_cot"] for r in read_jsonl(data / "train.jsonl")], vocab_size=1024
    )
    build_student("micro", tok, seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    return [str(data), str(base)]


@pytest.fixture(scope="session")
def optimizer_runs(tmp_path_factory) -> Path:
    return launch_once(tmp_path_factory, "optimizers")


@pytest.fixture(scope="session")
def trainer_runs(tmp_path_factory) -> Path:
    return launch_once(tmp_path_factory, "trainer", _trainer_inputs)


@pytest.fixture(scope="session")
def hf_runs(tmp_path_factory) -> Path:
    return launch_once(tmp_path_factory, "hf_trainer")
