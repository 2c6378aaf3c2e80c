"""Which domains count as ID and OOD when a run is scored: from the suite's manifest roles when it has them."""

from __future__ import annotations

import json

from iga.runs.evaluate import eval_domains


def _manifest(tmp_path, domains):
    (tmp_path / "manifest.json").write_text(json.dumps({"domains": domains}))
    return tmp_path


def test_roles_from_the_manifest_keep_ood_fixed_for_the_oracle_and_fewer_domains(tmp_path):
    data = _manifest(
        tmp_path,
        [{"name": "math", "role": "train"}, {"name": "law", "role": "train"},
         {"name": "finance", "role": "heldout"}, {"name": "chess", "role": "stress"}],
    )  # fmt: skip
    assert eval_domains(["math", "law"], data) == (["math", "law"], ["finance"])
    assert eval_domains(["math", "law", "finance"], data) == (["math", "law"], ["finance"])  # the oracle
    assert eval_domains(["math"], data) == (["math"], ["finance"])  # K = 1: law is neither ID nor OOD


def test_without_roles_everything_not_trained_on_is_ood(tmp_path):
    assert eval_domains(["math"], tmp_path) == (["math"], None)  # no manifest
    assert eval_domains(["math"], _manifest(tmp_path, [{"name": "math"}])) == (["math"], None)
