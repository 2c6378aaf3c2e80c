"""V-REx and GroupDRO against their direct formulas; DomainBed's annealing and optimizer reset."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.algorithms import get_algorithm
from iga.algorithms.groupdro import GroupDRO, groupdro_update
from iga.algorithms.vrex import VREx, vrex_objective

losses_st = st.lists(st.floats(0.0, 20.0), min_size=2, max_size=6)


@settings(max_examples=50, deadline=None)
@given(losses_st, st.floats(0.0, 1e3))
def test_vrex_objective_is_mean_plus_weighted_population_variance(values, weight):
    losses = torch.tensor(values, dtype=torch.float64)
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    loss, var = vrex_objective(losses, weight)
    assert float(var) == pytest.approx(variance, rel=1e-12, abs=1e-12)
    assert float(loss) == pytest.approx(mean + weight * variance, rel=1e-12, abs=1e-12)


def test_vrex_gradient_matches_the_formula():
    # d/dL_k [mean + λ·Var] = 1/K + λ·2(L_k − mean)/K
    losses = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64, requires_grad=True)
    VREx(num_domains=3, penalty=5.0, anneal_steps=0).loss(losses, step=0).backward()
    expected = [1 / 3 + 5.0 * 2 * (v - 3.0) / 3 for v in (1.0, 2.0, 6.0)]
    torch.testing.assert_close(
        losses.grad, torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=1e-14
    )


def test_annealing_weight_is_one_then_lambda():
    vrex = VREx(num_domains=2, penalty=7.0, anneal_steps=3, reset_optimizer=False)
    losses = torch.tensor([1.0, 3.0])  # Var = 1
    assert [float(vrex.loss(losses, step=s)) for s in range(5)] == [3.0, 3.0, 3.0, 9.0, 9.0]
    assert vrex.last_metrics["penalty_weight"] == 7.0


def test_optimizer_state_is_cleared_exactly_at_the_switch():
    net = torch.nn.Linear(2, 1)
    vrex = VREx(num_domains=2, penalty=2.0, anneal_steps=2)
    opt = vrex.build_optimizer(net, net.parameters(), lr=0.1)
    x = torch.randn(4, 2)
    seen = []
    for step in range(4):
        per_domain = net(x).squeeze(1).square().view(2, 2).mean(1)
        loss = vrex.loss(per_domain, step)
        seen.append(len(opt.state))  # state as the step's optimizer.step() will see it
        loss.backward()
        opt.step()
        opt.zero_grad()
    # Adam state exists after the first step, is cleared once at step == anneal_steps, then rebuilt.
    assert seen == [0, 2, 0, 2]
    assert float(opt.state[net.weight]["step"]) == 2  # counted from the reset (4 without it)


def test_reset_can_be_turned_off_and_warns_without_an_optimizer():
    vrex = VREx(num_domains=2, anneal_steps=1, reset_optimizer=False)
    vrex.loss(torch.ones(2), step=1)  # no optimizer and no reset requested: silent
    with pytest.warns(RuntimeWarning, match="state cannot be cleared"):
        VREx(num_domains=2, anneal_steps=1).loss(torch.ones(2), step=1)


def test_groupdro_follows_algorithm_one_across_steps():
    eta = 0.5
    dro = GroupDRO(num_domains=3, eta=eta)
    batches = [[1.0, 2.0, 0.5], [0.2, 3.0, 1.0], [2.0, 0.1, 0.1]]
    q = [1 / 3] * 3
    for step, values in enumerate(batches):
        q = [qi * math.exp(eta * v) for qi, v in zip(q, values, strict=True)]
        q = [qi / sum(q) for qi in q]
        losses = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        loss = dro.loss(losses, step)
        assert float(loss.detach()) == pytest.approx(
            sum(qi * v for qi, v in zip(q, values, strict=True)), rel=1e-12
        )
        loss.backward()
        # q is a constant of the objective: the gradient is q itself.
        torch.testing.assert_close(losses.grad, torch.tensor(q, dtype=torch.float64), rtol=1e-12, atol=0)
    assert dro.q.tolist() == pytest.approx(q, rel=1e-12)


def test_groupdro_update_does_not_overflow():
    q = groupdro_update(torch.tensor([0.5, 0.5]), torch.tensor([1e4, 0.0]), eta=1.0)
    assert q.tolist() == [1.0, 0.0]


def test_groupdro_state_round_trip_and_validation():
    dro = GroupDRO(num_domains=2, eta=1.0)
    dro.loss(torch.tensor([0.0, 2.0]), step=0)
    fresh = GroupDRO(num_domains=2, eta=1.0)
    fresh.load_state_dict(dro.state_dict())
    torch.testing.assert_close(fresh.q, dro.q)
    a, b = dro.loss(torch.tensor([1.0, 0.5]), 1), fresh.loss(torch.tensor([1.0, 0.5]), 1)
    assert float(a) == float(b)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        fresh.load_state_dict({"q": torch.ones(3) / 3})
    with pytest.raises(ValueError, match="summing to 1"):
        fresh.load_state_dict({"q": torch.tensor([0.9, 0.9])})
    with pytest.raises(ValueError, match="exactly the key 'q'"):
        fresh.load_state_dict({})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("vrex", {"penalty": -1.0}, r"VRExHParams.penalty must be a finite number >= 0, got -1.0"),
        ("vrex", {"anneal_steps": 1.5}, r"VRExHParams.anneal_steps must be an int >= 0"),
        ("vrex", {"reset_optimizer": "yes"}, r"reset_optimizer must be true or false"),
        ("groupdro", {"eta": 0.0}, r"GroupDROHParams.eta must be a finite number > 0"),
        ("irm", {"estimator": "odd"}, r"IRMHParams.estimator must be one of \('halves', 'full'\)"),
        ("fishr", {"ema": 1.0}, r"FishrHParams.ema must be a finite number >= 0 and < 1"),
        ("fishr", {"ema_correction": "adam"}, r"one of \('domainbed', 'bias'\)"),
        ("fishr", {"modules": 0}, r"FishrHParams.modules must be an int >= 1"),
        ("fish", {"meta_lr": 0.0}, r"FishHParams.meta_lr must be a finite number > 0 and <= 1"),
        ("andmask", {"tau": 1.5}, r"ANDMaskHParams.tau must be a finite number >= 0 and <= 1"),
        ("sandmask", {"tau": 1.0}, r"SANDMaskHParams.tau must be a finite number >= 0 and < 1"),
        ("sandmask", {"k": 0}, r"SANDMaskHParams.k must be a finite number > 0"),
        ("pcgrad", {"reduction": "max"}, r"one of \('mean', 'sum'\)"),
        ("cagrad", {"rescale": True}, r"CAGradHParams.rescale must be one of \(0, 1, 2\), got True"),
        ("cagrad", {"max_grad_norm": 0}, r"max_grad_norm must be a number > 0 or None"),
        ("iga_koyama", {"penalty": float("nan")}, r"IGAKoyamaHParams.penalty must be a finite number >= 0"),
        ("vrex", {"penalty": float("inf")}, r"VRExHParams.penalty must be a finite number >= 0, got inf"),
    ],
)
def test_bad_hyper_parameters_name_the_field_and_the_rule(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_algorithm(name)(num_domains=2, **options)
