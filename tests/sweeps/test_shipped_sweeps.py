"""The sweep specs shipped in configs/sweeps validate and plan (no training)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from iga.sweeps.sweep import load_spec, plan_jobs

SPECS = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_sweep_specs_plan(path, tmp_path):
    jobs = plan_jobs(load_spec(path), tmp_path, base_dir="BASE")
    assert len({j.job_id for j in jobs}) == len(jobs) >= 2  # smollm2_slice: ERM and IGA, one seed
    main = [j for j in jobs if j.ablation is None]
    assert {"erm", "iga"} <= {j.group for j in main}
    assert jobs[: len(main)] == main  # the main comparison runs first


#: Per committed spec (pilots included): the number of jobs and the sha256 (first 16 hex digits) of their ids joined
#: by spaces, planned with base_dir "BASE". A job's id names its folder, so a refactor that moved one would make a
#: re-run retrain every finished job; editing a spec changes its line here on purpose.
PINNED_JOB_IDS = {
    "long.yaml": (55, "a200b41ba45915c3"),
    "micro_study.yaml": (125, "1f28640adb6aacca"),
    "micro_study_cues.yaml": (65, "6a05f5ef297fb129"),
    "micro_study_search.yaml": (150, "cb3a654d9546452b"),
    "pilots/shortcut_400.yaml": (5, "bac2efa04b50562e"),
    "pilots/shortcut_pilot.yaml": (2, "cb69ba89be5ea15b"),
    "shortcut.yaml": (66, "2f9586937d71ab90"),
    "smollm2_slice.yaml": (6, "0aa3958e56112860"),
    "study.yaml": (55, "d6ab9c5883b527f1"),
}


def test_committed_specs_keep_their_job_ids(tmp_path):
    root = SPECS[0].parent
    planned = {}
    for path in sorted(root.rglob("*.yaml")):
        ids = [j.job_id for j in plan_jobs(load_spec(path), tmp_path, base_dir="BASE")]
        planned[path.relative_to(root).as_posix()] = (
            len(ids),
            hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16],
        )
    assert planned == PINNED_JOB_IDS
