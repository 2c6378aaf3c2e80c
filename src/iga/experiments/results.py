"""``result.json``: one provenance-rich file per run (config, versions, git commit, data hash, timings, metrics).

The file is rewritten atomically whenever a stage adds to it (training, then evaluation), so it is always valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json
from iga.utils.provenance import provenance

RESULT_NAME = "result.json"


def read_result(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / RESULT_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def update_result(run_dir: str | os.PathLike, **sections: Any) -> dict[str, Any]:
    """Merge ``sections`` into the run's result file (refreshing provenance) and write it atomically."""
    result = read_result(run_dir)
    result.update(sections)
    result["provenance"] = provenance()
    atomic_write_json(Path(run_dir) / RESULT_NAME, result)
    return result


def data_fingerprint(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a data manifest that identify the data (content hash, generator version, seed, preset)."""
    keys = ("content_hash", "generator_version", "seed", "preset")
    return {k: manifest.get(k) for k in keys if k in manifest}
