"""Provenance for result files: package versions, git commit, hardware, timings.

Every run writes these next to its metrics (PEFT ``method_comparison`` style), so a number can always be traced
to the code, data and machine that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("iga", "torch", "transformers", "peft", "accelerate", "datasets", "tokenizers", "numpy")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: str | os.PathLike | None = None) -> dict[str, str | bool | None]:
    """The commit of the source tree (``dirty`` when it has uncommitted changes); ``None`` outside git."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def hardware() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    if hasattr(os, "getloadavg"):
        # How busy the machine was over the last 1, 5 and 15 minutes when the file was written: a run's timings
        # beside other work (load above its own thread count) read differently from an idle machine's.
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if "torch" in sys.modules:  # never import torch just to describe the machine
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def provenance() -> dict[str, object]:
    return {
        "versions": package_versions(),
        "git": git_commit(),
        "hardware": hardware(),
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }
