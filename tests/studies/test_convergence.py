"""The convergence check of the study: exact gradients, IGA(τ=0) = SGD, the slope fit, and a decreasing minimum."""

from __future__ import annotations

import math

import pytest
import torch

from convergence import (
    convergence_check,
    domain_gradients,
    loglog_slope,
    main,
    make_toy,
    run_method,
)


def test_domain_gradients_equal_autograd_in_float64():
    toy = make_toy(num_domains=3, dim=6, n=32, seed=1)
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([0, 5, 7, 31])
    for k in range(3):
        x, y = toy.x[k, rows], toy.y[k, rows]
        loss = torch.nn.functional.softplus(-y * (x @ theta)).mean()
        loss = loss + toy.penalty * (theta**2 / (1 + theta**2)).sum()
        (grad,) = torch.autograd.grad(loss, theta)
        torch.testing.assert_close(
            domain_gradients(toy, theta.detach(), rows)[k], grad, rtol=1e-12, atol=1e-14
        )


def test_iga_with_tau_zero_is_exactly_sgd():
    toy = make_toy(dim=6, n=64, seed=0)
    sgd = run_method(toy, "sgd", steps=40, lr=0.3, batch=4, tau=0.0, seed=0)
    iga = run_method(toy, "iga", steps=40, lr=0.3, batch=4, tau=0.0, seed=0)
    assert sgd == iga
    assert run_method(toy, "iga", steps=40, lr=0.3, batch=4, tau=3.0, seed=0) != sgd
    with pytest.raises(ValueError, match="'sgd' or 'iga'"):
        run_method(toy, "adam", steps=1, lr=0.1, batch=2, tau=1.0, seed=0)


def test_loglog_slope_recovers_a_power_law():
    xs = [10, 100, 1000, 10000]
    assert loglog_slope(xs, [3.0 * x**-0.5 for x in xs]) == pytest.approx(-0.5, abs=1e-12)


def test_min_gradient_norm_falls_with_the_horizon_for_both_methods(tmp_path):
    res = convergence_check(horizons=(30, 100, 300), seeds=(0,), dim=6)
    for method in ("sgd", "iga"):
        means = [p["mean"] for p in res["methods"][method]["per_horizon"]]
        assert means[0] > means[-1] and res["methods"][method]["slope"] < 0
        assert all(math.isfinite(m) for m in means)
    main(["--out", str(tmp_path)])  # the full check as docs/results runs it (a few seconds)
    assert (tmp_path / "convergence.json").exists() and (tmp_path / "convergence.png").read_bytes()[
        :4
    ] == b"\x89PNG"
