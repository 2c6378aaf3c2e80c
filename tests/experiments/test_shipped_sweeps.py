"""The sweep specs shipped in configs/sweeps validate and plan (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iga.experiments.sweep import load_spec, plan_jobs

SPECS = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_sweep_specs_plan(path, tmp_path):
    jobs = plan_jobs(load_spec(path), tmp_path, base_dir="BASE")
    assert len({j.job_id for j in jobs}) == len(jobs) >= 2  # smollm2_slice: ERM and IGA, one seed
    main = [j for j in jobs if j.ablation is None]
    assert {"erm", "iga"} <= {j.group for j in main}
    assert jobs[: len(main)] == main  # the main comparison runs first
