"""LCS array metrics: exact identities in float64, statistical baselines, invariances and bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from iga.evaluation.lcs import (
    lcs_ood,
    lcs_per_layer,
    lcs_ratio,
    logical_consistency,
    permutation_baseline,
    prepare,
)
from iga.evaluation.lcs_report import compute_lcs_report


def sets_of(n_sets: int, k: int) -> np.ndarray:
    return np.repeat(np.arange(n_sets), k)


def test_identical_members_give_exactly_zero() -> None:
    rng = np.random.default_rng(1)
    h = np.repeat(rng.normal(size=(30, 16)) * 7.3 + 2.0, 4, axis=0)
    ids = [f"set-{i}" for i in sets_of(30, 4)]
    assert logical_consistency(h, ids) == 0.0
    assert lcs_ratio(h, ids) == 0.0


def test_accepts_torch_tensors_of_any_dtype() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    h = rng.normal(size=(12, 8))
    ids = sets_of(3, 4)
    expected = logical_consistency(h, ids)
    assert logical_consistency(torch.tensor(h), torch.tensor(ids)) == pytest.approx(expected, abs=1e-12)
    # bfloat16 has no numpy twin; rounding to bf16 changes the value only slightly
    assert logical_consistency(torch.tensor(h, dtype=torch.bfloat16), ids) == pytest.approx(
        expected, abs=0.02
    )


def test_random_vectors_match_permutation_baseline_and_one_minus_one_over_k() -> None:
    rng = np.random.default_rng(3)
    k, n_sets = 4, 300
    h = rng.normal(size=(k * n_sets, 64))
    ids = sets_of(n_sets, k)
    lcs = logical_consistency(h, ids)
    perm_mean, perm_std = permutation_baseline(h, ids, n_permutations=10, seed=0)
    # per-set std ≈ 0.04 (cosines of 64-d Gaussians have std 1/8), so the mean over 300 sets has std ≈ 0.0025
    assert lcs == pytest.approx(1 - 1 / k, abs=0.02)
    assert perm_mean == pytest.approx(lcs, abs=0.02)
    assert 0 < perm_std < 0.02
    assert lcs_ratio(h, ids) == pytest.approx(1 - 1 / k, abs=0.02)


def test_structured_vectors_score_far_below_permutation_baseline() -> None:
    rng = np.random.default_rng(4)
    base = np.repeat(rng.normal(size=(100, 32)), 4, axis=0)
    h = base + 0.1 * rng.normal(size=base.shape)
    ids = sets_of(100, 4)
    assert logical_consistency(h, ids) < 0.05 < 0.7 < permutation_baseline(h, ids)[0]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_pairwise_cosine_is_k_over_k_minus_one_times_canonical(k: int) -> None:
    rng = np.random.default_rng(k)
    z, _ = prepare(rng.normal(size=(k * 20, 10)))  # canonical unit vectors (globally centred)
    ids = sets_of(20, k)
    canonical = logical_consistency(z, ids, centre=False)
    pairwise = logical_consistency(z, ids, definition="pairwise_cosine")
    assert pairwise == pytest.approx(k / (k - 1) * canonical, rel=1e-12, abs=0)


def test_invariant_to_global_shift_and_positive_rescale() -> None:
    rng = np.random.default_rng(5)
    h = rng.normal(size=(40, 12))
    ids = sets_of(10, 4)
    domains = ["math", "law", "finance", "sports"] * 10
    shifted = 3.7 * h + rng.normal(size=12) * 50
    for fn in (
        lambda x: logical_consistency(x, ids),
        lambda x: lcs_ratio(x, ids),
        lambda x: permutation_baseline(x, ids, n_permutations=3)[0],
        lambda x: lcs_ood(x, ids, domains, {"math", "law"}),
    ):
        assert fn(shifted) == pytest.approx(fn(h), abs=1e-12)


def test_hand_computed_canonical_and_ratio() -> None:
    # centring by 0.5 then normalising gives z = [1, -1, 1, 1]
    h = [[1.0], [-1.0], [1.0], [1.0]]
    ids = ["a", "a", "b", "b"]
    assert logical_consistency(h, ids) == 0.5  # set a: 1 - 0², set b: 1 - 1²
    assert lcs_ratio(h, ids) == pytest.approx(2 / 3, abs=1e-15)  # within 2 / total 3


def test_relative_dispersion_hand_computed() -> None:
    h = [[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]]
    # set 1: centroid (2,0), mean squared deviation 1 → 1/4; set 2: 0
    assert logical_consistency(h, [1, 1, 2, 2], definition="relative_dispersion") == pytest.approx(0.125)


def test_lcs_ood_hand_computed() -> None:
    h = [[1, 0], [1, 0], [0, 1], [-1, 0], [0, 1], [0, 1], [5, 5], [5, 5]]
    ids = ["s", "s", "s", "s", "t", "t", "u", "u"]
    domains = ["math", "law", "finance", "sports", "math", "cooking", "math", "law"]
    # s: OOD distances 1 (orthogonal) and 2 (opposite) → 1.5; t: 0; u has no OOD member → skipped
    assert lcs_ood(h, ids, domains, {"math", "law"}, centre=False) == pytest.approx(0.75, abs=1e-15)
    with pytest.raises(ValueError, match="held-out"):
        lcs_ood(h, ids, ["math"] * 8, {"math"})


def test_singleton_sets_are_skipped() -> None:
    rng = np.random.default_rng(6)
    h = rng.normal(size=(8, 5))
    ids = sets_of(2, 4)
    extended = np.vstack([h, rng.normal(size=(1, 5))])
    assert logical_consistency(extended, [*ids, 99], centre=False) == logical_consistency(
        h, ids, centre=False
    )
    report = compute_lcs_report(extended, [*ids, 99])
    assert (report.n_sets, report.n_skipped, report.n_rows) == (2, 1, 9)


def test_all_rows_identical_stay_zero_instead_of_noise() -> None:
    h = np.tile([0.1, 0.7, 1e3], (6, 1))  # centring leaves only rounding noise, which must not be normalised
    z, n_zero = prepare(h)
    assert n_zero == 6 and not z.any()
    assert logical_consistency(h, sets_of(3, 2)) == 0.0


def test_per_layer_accepts_mapping_and_stacked_array() -> None:
    rng = np.random.default_rng(7)
    stacked = rng.normal(size=(3, 12, 6))
    ids = sets_of(4, 3)
    from_array = lcs_per_layer(stacked, ids)
    from_dict = lcs_per_layer({i: stacked[i] for i in range(3)}, ids)
    assert from_array == from_dict
    assert from_array[1] == logical_consistency(stacked[1], ids)


def test_report_records_everything_and_serialises() -> None:
    rng = np.random.default_rng(8)
    layers = {0: rng.normal(size=(16, 6)), 1: rng.normal(size=(16, 6)), 2: rng.normal(size=(16, 6))}
    ids = sets_of(4, 4)
    domains = ["math", "law", "finance", "sports"] * 4
    report = compute_lcs_report(
        layers, ids, domains=domains, train_domains={"math", "law"}, extra_settings={"pooling": "anchors"}
    )
    assert report.layer == 2
    assert report.canonical == logical_consistency(layers[2], ids)
    assert report.per_layer == lcs_per_layer(layers, ids)
    assert report.top_half_mean == pytest.approx((report.per_layer[1] + report.per_layer[2]) / 2)
    assert report.alternatives["canonical"] == report.canonical
    assert report.ood == lcs_ood(layers[2], ids, domains, {"math", "law"})
    train_rows = [i for i, d in enumerate(domains) if d in {"math", "law"}]
    assert report.canonical_train == logical_consistency(layers[2][train_rows], ids[train_rows])
    assert report.settings["pooling"] == "anchors" and report.settings["centre"] is True
    assert json.loads(json.dumps(report.to_dict()))["per_layer"]["0"] == report.per_layer[0]
    with pytest.raises(ValueError, match="available: \\[0, 1, 2\\]"):
        compute_lcs_report(layers, ids, layer=5)


def test_permutation_baseline_is_seeded() -> None:
    rng = np.random.default_rng(9)
    h, ids = rng.normal(size=(20, 4)), sets_of(5, 4)
    assert permutation_baseline(h, ids, seed=3) == permutation_baseline(h, ids, seed=3)
    assert permutation_baseline(h, ids, seed=3) != permutation_baseline(h, ids, seed=4)
    assert permutation_baseline(h, ids, n_permutations=1)[1] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"definition": "cka"}, "allowed: canonical, pairwise_cosine, relative_dispersion"),
        ({"definition": "pairwise_cosine", "normalise": False}, "normalise"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        logical_consistency(np.eye(4), [0, 0, 1, 1], **kwargs)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="set_ids: expected 4 labels"):
        logical_consistency(np.eye(4), [0, 0, 1])
    with pytest.raises(ValueError, match="no isomer set has two or more members"):
        logical_consistency(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="h: expected a 2-D array"):
        logical_consistency(np.ones(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        logical_consistency([[np.nan], [1.0]], [0, 0])


@settings(max_examples=60, deadline=None)
@given(
    h=arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 5)), elements=st.floats(-1e3, 1e3)),
    data=st.data(),
)
def test_canonical_lcs_lies_in_unit_interval(h: np.ndarray, data: st.DataObject) -> None:
    n = h.shape[0]
    ids = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    ids[1] = ids[0]  # at least one set with two members
    for centre in (True, False):
        value = logical_consistency(h, ids, centre=centre)
        assert -1e-12 <= value <= 1 + 1e-12
        assert -1e-12 <= lcs_ratio(h, ids, centre=centre) <= 1 + 1e-12
