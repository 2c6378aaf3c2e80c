"""DomainPartition: per-domain sums equal a naive masked sum for every row order and group size."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.gradients import DomainPartition
from iga.gradients.partition import check_not_packed


@st.composite
def _ids(draw):
    k_dom = draw(st.integers(2, 4))
    extra = draw(st.lists(st.integers(0, k_dom - 1), max_size=6))
    ids = list(range(k_dom)) + extra
    ids = sorted(ids) if draw(st.booleans()) else draw(st.permutations(ids))
    return torch.tensor(ids), k_dom


@settings(max_examples=60, deadline=None)
@given(
    _ids(),
    st.integers(1, 3),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["accumulate", "out", "fresh"]),
    st.sampled_from([(3, 2), (2, 3), (40, 4)]),
)
def test_outer_and_rowsum_equal_masked_sums(ids_k, tokens, seed, mode, shape):
    # (3, 2) and (40, 4) are narrow results (computed transposed), (2, 3) is not; "out" writes into a given buffer.
    ids, k_dom = ids_k
    m, n = shape
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(len(ids), tokens, m, generator=gen, dtype=torch.float64)
    x = torch.randn(len(ids), tokens, n, generator=gen, dtype=torch.float64)
    part = DomainPartition.from_ids(ids, k_dom)
    accumulate = mode == "accumulate"
    acc = torch.randn(k_dom, m, n, generator=gen, dtype=torch.float64) if accumulate else None
    acc_b = torch.randn(k_dom, m, generator=gen, dtype=torch.float64) if accumulate else None
    want = torch.stack([torch.einsum("btm,btn->mn", g[ids == k], x[ids == k]) for k in range(k_dom)]) * 2.5
    want_b = torch.stack([g[ids == k].sum((0, 1)) for k in range(k_dom)]) * 2.5
    if accumulate:
        want, want_b = want + acc, want_b + acc_b
    if mode == "out":
        out = torch.full((k_dom, m, n), float("nan"), dtype=torch.float64)  # its contents are ignored
        got = part.outer(g, x, scale=2.5, out=out)
        assert got.data_ptr() == out.data_ptr()
    else:
        got = part.outer(g, x, scale=2.5, acc=None if acc is None else acc.clone())
    got_b = part.rowsum(g, scale=2.5, acc=None if acc_b is None else acc_b.clone())
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(got_b, want_b, rtol=1e-13, atol=1e-13)
    assert part.equal_sorted == (bool((ids[1:] >= ids[:-1]).all()) and len(set(part.counts)) == 1)


def test_outer_refuses_a_buffer_that_does_not_fit():
    part = DomainPartition.from_ids(torch.tensor([0, 1]), 2)
    g = torch.ones(2, 4, 3)
    with pytest.raises(ValueError, match=r"out must be a \(2, 3, 3\) torch.float32 tensor"):
        part.outer(g, g, scale=1.0, out=torch.empty(2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="not both"):
        part.outer(g, g, scale=1.0, acc=torch.zeros(2, 3, 3), out=torch.empty(2, 3, 3))


def test_low_precision_inputs_are_summed_in_fp32():
    part = DomainPartition.from_ids(torch.tensor([0, 1]), 2)
    g = torch.ones(2, 4, 3, dtype=torch.bfloat16)
    assert part.outer(g, g, scale=1.0).dtype == torch.float32


@pytest.mark.parametrize(
    ("ids", "k_dom", "error", "match"),
    [
        (torch.tensor([0, 0, 1]), 3, ValueError, r"domain\(s\) \[2\] have no rows"),
        (torch.tensor([0, 3]), 2, ValueError, r"values in 0\.\.1"),
        (torch.tensor([-1, 0, 1]), 2, ValueError, r"values in 0\.\.1"),
        (torch.tensor([[0, 1]]), 2, ValueError, r"shape \(batch,\)"),
        (torch.tensor([0.0, 1.0]), 2, TypeError, "integer tensor"),
        (torch.tensor([0, 1]), 1, ValueError, "num_domains must be an int >= 2"),
    ],
)
def test_bad_domain_ids(ids, k_dom, error, match):
    with pytest.raises(error, match=match):
        DomainPartition.from_ids(ids, k_dom)


@pytest.mark.parametrize(
    "row",
    [[0, 1, 2, 3, 4, 5], [1, 1, 0, 1, 2, 3], [0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 0, 0], [0, 1, 2, 3, 1, 1]],
)
def test_position_ids_of_padded_rows_pass(row):
    check_not_packed(torch.tensor([row, row]), batch_size=2)


def test_position_ids_of_packed_rows_are_refused():
    with pytest.raises(ValueError, match="packed"):
        check_not_packed(torch.tensor([[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 1, 2]]), batch_size=2)
    with pytest.raises(ValueError, match="padding-free"):
        check_not_packed(torch.tensor([[0, 1, 2, 0, 1, 2]]), batch_size=2)
