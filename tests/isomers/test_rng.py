"""The counter-based RNG: pinned values (the cross-Python guarantee), ranges, permutations, no modulo bias."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.isomers.rng import HashRng


def test_pinned_values_never_change():
    # blake2b("0|S01_arith_chain|train:0|sample|k"), k = 0, 1, 2; any change here changes every suite on disk.
    rng = HashRng(0, "S01_arith_chain", "train:0", "sample")
    assert [rng.u64() for _ in range(3)] == [16424531584440620753, 12321719498563182391, 13039239848529257858]
    rng = HashRng(0, "x")
    assert [rng.randint(1, 6) for _ in range(10)] == [4, 1, 2, 5, 2, 1, 2, 2, 3, 2]
    assert HashRng(1, "y").shuffle(range(8)) == [1, 2, 5, 6, 4, 3, 0, 7]


def test_child_streams_are_independent_of_draw_order():
    parent = HashRng(3, "s")
    first = parent.child("pool", "names").u64()
    parent.u64()
    parent.u64()
    assert parent.child("pool", "names").u64() == first
    assert parent.child("pool", "items").u64() != first


@given(st.integers(0, 10**9), st.integers(-50, 50), st.integers(0, 60))
def test_randint_stays_in_range(seed, lo, span):
    rng = HashRng(seed)
    assert all(lo <= rng.randint(lo, lo + span) <= lo + span for _ in range(20))


@given(st.integers(0, 10**9), st.lists(st.integers(), max_size=30))
def test_shuffle_is_a_permutation_and_sample_is_distinct(seed, items):
    rng = HashRng(seed)
    assert sorted(rng.shuffle(items)) == sorted(items)
    k = len(items) // 2
    picked = rng.sample(list(range(len(items))), k)
    assert len(set(picked)) == k


def test_randint_is_uniform_on_a_non_power_of_two_range():
    rng = HashRng(11, "uniform")
    counts = Counter(rng.randint(0, 5) for _ in range(12_000))
    assert set(counts) == set(range(6))
    # each cell ~ Binomial(12000, 1/6): mean 2000, sd ~40.8; 5 sd is a generous band
    assert all(abs(c - 2000) < 205 for c in counts.values())


def test_errors_on_empty_inputs():
    rng = HashRng(0)
    with pytest.raises(ValueError, match="empty range"):
        rng.randint(3, 2)
    with pytest.raises(ValueError, match="empty sequence"):
        rng.choice([])
    with pytest.raises(ValueError, match="exceeds population"):
        rng.sample([1], 2)
