"""Suite building: determinism, isomer invariants, clean text, ids, splits, anchors, manifest and config errors."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from iga.isomers import ConfigError, Manifest, build_suite, generate_records, list_skeletons, make_config
from iga.isomers.build import SPLIT_ROLES
from iga.isomers.record import GENERATOR_VERSION, RECORD_FIELDS, SPLITS
from iga.utils.io import read_jsonl

# The tiny preset's content hash for seed 0. It changes whenever generated text changes: a skeleton, a shipped
# domain file or the renderer. If that change is intended, bump GENERATOR_VERSION in iga/isomers/record.py when the
# record *meaning* changed, then paste the new hash printed by `iga data build --preset tiny --out /tmp/t`.
TINY_SEED0_HASH = "86487bf922e76bf760a54405a6087e4165341d21908590043ca063e025fcbd6a"


def _sets(records):
    sets = defaultdict(list)
    for r in records:
        sets[r["instance_id"]].append(r)
    return sets


def test_golden_hash_of_the_tiny_preset(tmp_path):
    manifest = build_suite("tiny", tmp_path, seed=0)
    assert manifest.content_hash == TINY_SEED0_HASH


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    a = build_suite("tiny", tmp_path / "a", seed=7)
    b = build_suite("tiny", tmp_path / "b", seed=7)
    c = build_suite("tiny", tmp_path / "c", seed=8)
    for split in SPLITS:
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{split}.jsonl"
        ).read_bytes()
    assert a.content_hash == b.content_hash != c.content_hash
    assert all(a.splits[s]["sha256"] != c.splits[s]["sha256"] for s in SPLITS)


def test_every_preset_covers_every_skeleton_and_domain(tiny, small, domains):
    for records in (tiny, small):
        for split in SPLITS:
            assert {r["skeleton"] for r in records[split]} == set(list_skeletons())
            wanted = {name for name, d in domains.items() if d.role in SPLIT_ROLES[split]}
            assert {r["domain"] for r in records[split]} == wanted


def test_isomer_invariants(small, domains):
    order = list(domains)
    for split in SPLITS:
        for instance_id, members in _sets(small[split]).items():
            first = members[0]
            for key in (
                "canonical_answer",
                "canonical_trace",
                "params",
                "difficulty",
                "skeleton",
                "answer_type",
            ):
                assert all(m[key] == first[key] for m in members), (instance_id, key)
            steps = {m["gold_cot"].count("\nStep ") + 1 for m in members}
            assert steps == {len(first["canonical_trace"])}
            assert len({m["question"] for m in members}) == len(members)  # same logic, different text
            assert [m["domain"] for m in members] == [d for d in order if d in {m["domain"] for m in members}]
            if first["answer_type"] in ("int", "fraction", "bool", "tri"):
                assert all(m["answer"] == first["canonical_answer"] for m in members)
            else:
                assert all(m["answer"] in m["label_space"] for m in members)


def test_members_are_consecutive_and_records_are_complete(small):
    for split in SPLITS:
        seen, previous = set(), None
        for r in small[split]:
            assert tuple(r) == tuple(f for f in RECORD_FIELDS if f != "teacher_answer")  # a noise-free suite
            assert r["split"] == split and r["generator_version"] == GENERATOR_VERSION and r["seed"] == 0
            if r["instance_id"] != previous:
                assert r["instance_id"] not in seen, "an isomer set is split across the file"
                seen.add(r["instance_id"])
                previous = r["instance_id"]


_LEFTOVER = re.compile(r"[{}]")


@pytest.mark.parametrize("preset", ["tiny", "small", pytest.param("default", marks=pytest.mark.slow)])
def test_no_unfilled_slot_or_brace_in_any_rendered_string(preset, tiny, small, domains):
    records = {"tiny": tiny, "small": small}.get(preset) or generate_records(preset, 0, domains=domains)
    for split in SPLITS:
        for r in records[split]:
            texts = [r["question"], r["gold_cot"], r["answer"], *r["label_space"]]
            if r["shortcut"]:
                texts += [r["shortcut"]["text"], r["shortcut"]["value"]]
            bad = [t for t in texts if _LEFTOVER.search(t) or "  " in t or not t.strip()]
            assert not bad, (r["id"], bad)


def test_ids_are_unique_and_splits_are_disjoint_by_instance(small):
    ids = [r["id"] for split in SPLITS for r in small[split]]
    assert len(ids) == len(set(ids))
    owner: dict[str, str] = {}
    params: dict[str, str] = {}
    for split in SPLITS:
        for r in small[split]:
            assert owner.setdefault(r["instance_id"], split) == split
            key = json.dumps([r["skeleton"], r["params"]], sort_keys=True)
            assert params.setdefault(key, r["instance_id"]) == r["instance_id"], (
                "two instances share parameters"
            )


def test_anchors_point_at_step_ends_and_the_answer_line(small):
    for split in ("train", "ood_depth", "stress"):
        for r in small[split]:
            cot, anchors = r["gold_cot"], r["anchors"]
            lines = cot.split("\n")
            assert len(anchors) == len(r["canonical_trace"]) + 1 == len(lines)
            for i, (line, a) in enumerate(zip(lines[:-1], anchors[:-1], strict=True), start=1):
                assert line.startswith(f"Step {i}: ") and line.endswith(".")
                assert cot[a] == "." and (a + 1 == len(cot) or cot[a + 1] == "\n")
                assert cot[: a + 1].endswith(line)
            assert cot[anchors[-1] :] == f"The answer is {r['answer']}."


def test_questions_are_short_at_train_difficulty(small):
    lengths = sorted(
        len(r["question"].removeprefix(r["shortcut"]["text"] if r["shortcut"] else "").split())
        for r in small["train"]
    )
    assert sum(lengths) / len(lengths) < 50
    assert lengths[int(0.95 * len(lengths))] <= 60


def test_ood_depth_is_deeper_than_train(small):
    def mean_depth(split):
        return sum(len(r["canonical_trace"]) for r in small[split]) / len(small[split])

    assert mean_depth("ood_depth") > mean_depth("id_test") + 1
    assert all(
        r["difficulty"]["regime"] == ("ood_depth" if s == "ood_depth" else "train")
        for s in SPLITS
        for r in small[s]
    )


def test_manifest_and_files_agree(tmp_path):
    manifest = build_suite(make_config("tiny", skeletons=["S01", "S09"], hash_line=True), tmp_path, seed=3)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert Manifest.load(tmp_path) == manifest
    assert on_disk["content_hash"] == manifest.content_hash and on_disk["seed"] == 3
    assert on_disk["config"]["skeletons"] == ["S01_arith_chain", "S09_transitive_order"]
    for split in SPLITS:
        rows = read_jsonl(tmp_path / f"{split}.jsonl")
        assert (
            len(rows)
            == manifest.splits[split]["records"]
            == sum(manifest.splits[split]["by_skeleton"].values())
        )
        assert all(r["gold_cot"].endswith(f"\n#### {r['answer']}") for r in rows)
    assert [d["name"] for d in on_disk["domains"]][:4] == ["math", "medicine", "law", "science"]


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match=r"config.train_per_skeletn: unknown key"):
        make_config("tiny", train_per_skeletn=3)
    with pytest.raises(ConfigError, match=r"config.domains: unknown domain 'astronomy'"):
        generate_records(make_config("tiny", domains=["math", "astronomy"]), 0)
    with pytest.raises(ConfigError, match=r"config.domains: select at least one training domain"):
        generate_records(make_config("tiny", domains=["finance"]), 0)
    narrow = {"S11": {"train": {"depth": [1, 1], "width": [2, 2], "num_range": [1, 1]}}}
    with pytest.raises(
        ConfigError, match=r"difficulty.S11_state_tracking.train: only \d+ distinct instances"
    ):
        generate_records(make_config("tiny", skeletons=["S11"], difficulty=narrow, train_per_skeleton=40), 0)


def test_gold_chains_of_thought_score_as_correct(small):
    answers = pytest.importorskip("iga.isomers.answers")
    for split in SPLITS:
        for r in small[split]:
            for mode in ("strict", "flexible"):
                assert answers.score_completion(r["gold_cot"], r, mode=mode).correct, (r["id"], mode)
            if r["shortcut"] and not r["shortcut"]["correct"]:
                wrong = f"The answer is {r['shortcut']['value']}."
                assert not answers.score_completion(wrong, r).correct, r["id"]


def test_oracle_suite_adds_heldout_domains_to_train_and_val_without_cues_and_keeps_eval_splits(domains):
    plain = generate_records(make_config("tiny"), seed=3)
    oracle = generate_records(make_config("tiny", oracle=True), seed=3)
    heldout = {name for name, d in domains.items() if d.role == "heldout"}
    for split in ("train", "val"):
        by_domain = defaultdict(list)
        for r in oracle[split]:
            by_domain[r["domain"]].append(r)
        assert heldout <= set(by_domain)
        assert all(r["shortcut"] is None for d in heldout for r in by_domain[d])
        # The training-domain renderings are the very records of the plain suite.
        assert [r for r in oracle[split] if r["domain"] not in heldout] == plain[split]
    for split in ("id_test", "ood_surface", "ood_depth", "stress"):
        assert oracle[split] == plain[split]
