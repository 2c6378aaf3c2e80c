"""per_domain_token_loss: HF shift convention, ignored tokens count nowhere, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.gradients import per_domain_token_loss


def _naive(logits: torch.Tensor, labels: torch.Tensor, domain_ids: torch.Tensor, k_dom: int) -> list[float]:
    sums, counts = [0.0] * k_dom, [0] * k_dom
    for i in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            target = int(labels[i, t + 1])
            if target == -100:
                continue
            logp = torch.log_softmax(logits[i, t], dim=-1)[target]
            sums[int(domain_ids[i])] -= float(logp)
            counts[int(domain_ids[i])] += 1
    return [s / c for s, c in zip(sums, counts, strict=True)]


@st.composite
def _batches(draw):
    k_dom = draw(st.integers(1, 4))
    rows = draw(st.integers(k_dom, 7))
    seq, vocab = draw(st.integers(2, 6)), draw(st.integers(2, 5))
    ids = list(range(k_dom)) + draw(
        st.lists(st.integers(0, k_dom - 1), min_size=rows - k_dom, max_size=rows - k_dom)
    )
    ids = draw(st.permutations(ids))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, seq, vocab, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, vocab, (rows, seq), generator=gen)
    ignore = torch.rand(rows, seq, generator=gen) < 0.4
    labels[ignore] = -100
    labels[:, 1] = torch.randint(0, vocab, (rows,), generator=gen)  # every row keeps >= 1 supervised token
    return logits, labels, torch.tensor(ids), k_dom


@settings(max_examples=40, deadline=None)
@given(_batches())
def test_matches_naive_per_token_loop(batch):
    logits, labels, domain_ids, k_dom = batch
    got = per_domain_token_loss(logits, labels, domain_ids, k_dom)
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(_naive(logits, labels, domain_ids, k_dom), rel=1e-12, abs=1e-12)


def test_ignored_positions_do_not_matter_and_first_label_is_never_a_target():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=gen)
    labels = torch.tensor([[3, -100, 4, 1, -100], [5, 2, -100, 6, 0]])
    ids = torch.tensor([0, 1])
    base = per_domain_token_loss(logits, labels, ids, 2)
    changed = logits.clone()
    changed[0, 0] += 100.0  # predicts labels[0, 1] = -100
    changed[:, -1] += 100.0  # the last position predicts nothing
    assert torch.equal(per_domain_token_loss(changed, labels, ids, 2), base)
    relabelled = labels.clone()
    relabelled[:, 0] = 0  # position 0 is never a target after the shift
    assert torch.equal(per_domain_token_loss(logits, relabelled, ids, 2), base)


def test_uniform_logits_give_log_vocab():
    labels = torch.tensor([[-100, 1, 2], [-100, -100, 4]])
    got = per_domain_token_loss(torch.zeros(2, 3, 5), labels, torch.tensor([0, 1]), 2)
    assert got.tolist() == pytest.approx([math.log(5)] * 2)


def test_equal_token_counts_make_the_domain_mean_the_pooled_mean():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 9, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 9, (4, 6), generator=gen)
    labels[:, :2] = -100
    pooled = F.cross_entropy(logits[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1), ignore_index=-100)
    got = per_domain_token_loss(logits, labels, torch.tensor([0, 0, 1, 1]), 2).mean()
    assert float(got) == pytest.approx(float(pooled), rel=1e-14)


def test_domain_without_supervised_token_is_an_error():
    labels = torch.tensor([[-100, 1, 2], [-100, -100, -100]])
    with pytest.raises(ValueError, match=r"domain\(s\) \[1\] have no supervised token"):
        per_domain_token_loss(torch.zeros(2, 3, 5), labels, torch.tensor([0, 1]), 2)


@pytest.mark.parametrize(
    ("logits", "labels", "ids", "k_dom", "match"),
    [
        (
            torch.zeros(2, 3),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([0, 1]),
            2,
            "logits must have shape",
        ),
        (
            torch.zeros(2, 3, 4),
            torch.zeros(2, 2, dtype=torch.long),
            torch.tensor([0, 1]),
            2,
            "labels must have shape",
        ),
        (
            torch.zeros(2, 3, 4),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([0]),
            2,
            "domain_ids must have shape",
        ),
        (
            torch.zeros(2, 3, 4),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([0, 2]),
            2,
            r"values in 0\.\.1",
        ),
        (torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), 0, "positive int"),
    ],
)
def test_bad_inputs_name_the_problem(logits, labels, ids, k_dom, match):
    with pytest.raises(ValueError, match=match):
        per_domain_token_loss(logits, labels, ids, k_dom)
