"""Convergence check for the paper's "standard SGD rate" claim, on a smooth non-convex toy with several domains.

The claim: with the mask, IGA keeps SGD's rate for smooth non-convex objectives, ``min_{t≤T} E‖∇L(θ_t)‖² =
O(1/√T)`` with step size ``η ∝ 1/√T``. The check runs plain SGD and IGA's update from the same start for several
horizons ``T`` (step ``η0/√T`` each), records ``min_{t≤T} ‖∇L(θ_t)‖²`` of the *full* objective, and fits the
log–log slope over ``T`` (the rate predicts about −1/2; a slower method has a shallower slope, a constant-factor
slowdown shifts the line without changing its slope).

The toy: K domains of logistic regression on ``d`` features, one invariant block (same weights in every domain) and
one spurious block whose sign flips between domains, plus the smooth non-convex penalty ``λ Σ θ²/(1+θ²)``.
Mini-batch per-domain gradients feed both methods; IGA multiplies the mean gradient by
``M = exp(−τ·V̂)`` (:func:`iga.conflict_mask`). There is no LoRA matrix here, so no SVD projection: the check is
about the mask, the part of the update that could break the rate.

Run: ``python studies/convergence.py --out docs/results`` (writes convergence.json and convergence.png).

Example:
    >>> res = convergence_check(horizons=(50, 200), seeds=(0,), dim=6)
    >>> sorted(res["methods"])
    ['iga', 'sgd']
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Toy:
    """Per-domain data (features ``x[k]`` (n, d) and labels ``y[k]`` in ±1) and the penalty weight."""

    x: Any
    y: Any
    penalty: float

    @property
    def num_domains(self) -> int:
        return self.x.shape[0]


def make_toy(
    *, num_domains: int = 4, dim: int = 10, n: int = 256, penalty: float = 0.05, seed: int = 0
) -> Toy:
    import torch

    g = torch.Generator().manual_seed(seed)
    half = dim // 2
    w_inv = torch.randn(half, generator=g, dtype=torch.float64)
    w_spur = torch.randn(dim - half, generator=g, dtype=torch.float64)
    xs, ys = [], []
    for k in range(num_domains):
        sign = 1.0 if k % 2 == 0 else -1.0  # the spurious block's relation to the label flips across domains
        x = torch.randn(n, dim, generator=g, dtype=torch.float64)
        logits = x[:, :half] @ w_inv + sign * (x[:, half:] @ w_spur)
        y = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(logits), 1.0, -1.0)
        xs.append(x)
        ys.append(y)
    return Toy(torch.stack(xs), torch.stack(ys), penalty)


def domain_gradients(toy: Toy, theta: Any, rows: Any | None = None) -> Any:
    """(K, d) gradients of each domain's loss at ``theta`` (on ``rows`` of each domain, or all of them)."""
    import torch

    x, y = (toy.x, toy.y) if rows is None else (toy.x[:, rows], toy.y[:, rows])
    margin = y * torch.einsum("knd,d->kn", x, theta)
    data = -torch.einsum("kn,knd->kd", y * torch.sigmoid(-margin), x) / x.shape[1]
    reg = toy.penalty * 2 * theta / (1 + theta * theta) ** 2  # d/dθ of θ²/(1+θ²)
    return data + reg


def full_grad_norm_sq(toy: Toy, theta: Any) -> float:
    return float(domain_gradients(toy, theta).mean(0).pow(2).sum())


def run_method(
    toy: Toy, method: str, *, steps: int, lr: float, batch: int, tau: float, seed: int
) -> list[float]:
    """``‖∇L(θ_t)‖²`` of the full objective for t = 0..steps under ``method`` (``sgd`` | ``iga``)."""
    import torch

    from iga import conflict_mask

    g = torch.Generator().manual_seed(10_000 + seed)
    theta = torch.full((toy.x.shape[2],), 2.0, dtype=torch.float64)  # a fixed start away from the optimum
    norms = [full_grad_norm_sq(toy, theta)]
    n = toy.x.shape[1]
    for _ in range(steps):
        rows = torch.randint(0, n, (batch,), generator=g)
        grads = domain_gradients(toy, theta, rows)
        update = grads.mean(0)
        if method == "iga":
            update = conflict_mask(grads, tau) * update
        elif method != "sgd":
            raise ValueError(f"method must be 'sgd' or 'iga', got {method!r}")
        theta = theta - lr * update
        norms.append(full_grad_norm_sq(toy, theta))
    return norms


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def convergence_check(
    *,
    horizons: Sequence[int] = (100, 300, 1000, 3000, 10000),
    seeds: Sequence[int] = (0, 1, 2),
    lr0: float = 2.0,
    batch: int = 8,
    tau: float = 3.0,
    num_domains: int = 4,
    dim: int = 10,
) -> dict[str, Any]:
    """``min_{t≤T} ‖∇L(θ_t)‖²`` per method, horizon and seed (step ``lr0/√T``), and each method's log–log slope."""
    toys = {s: make_toy(num_domains=num_domains, dim=dim, seed=s) for s in seeds}
    methods: dict[str, Any] = {}
    for method in ("sgd", "iga"):
        per_t = []
        for T in horizons:
            mins = [
                min(run_method(toys[s], method, steps=T, lr=lr0 / math.sqrt(T), batch=batch, tau=tau, seed=s))
                for s in seeds
            ]
            per_t.append({"T": T, "min_grad_norm_sq": mins, "mean": sum(mins) / len(mins)})
        methods[method] = {
            "per_horizon": per_t,
            "slope": loglog_slope(list(horizons), [p["mean"] for p in per_t]),
        }
    return {
        "settings": {
            "horizons": list(horizons),
            "seeds": list(seeds),
            "lr": "lr0/sqrt(T)",
            "lr0": lr0,
            "batch_per_domain": batch,
            "tau": tau,
            "num_domains": num_domains,
            "dim": dim,
            "variance_norm": "relative",
        },
        "methods": methods,
        "ratio_iga_over_sgd": [
            i["mean"] / s["mean"]
            for i, s in zip(methods["iga"]["per_horizon"], methods["sgd"]["per_horizon"], strict=True)
        ],
    }


def plot_convergence(result: dict[str, Any], out: str | Path) -> Path:
    from iga.sweeps.plots import pyplot, save_png_and_svg

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, data in result["methods"].items():
        ts = [p["T"] for p in data["per_horizon"]]
        ax.loglog(
            ts, [p["mean"] for p in data["per_horizon"]], "o-", label=f"{method} (slope {data['slope']:.2f})"
        )
    ts = result["settings"]["horizons"]
    ref = result["methods"]["sgd"]["per_horizon"][0]["mean"]
    ax.loglog(ts, [ref * (t / ts[0]) ** -0.5 for t in ts], "k--", lw=0.8, label="T^-1/2")
    ax.set_xlabel("horizon T (steps, lr = lr0/√T)")
    ax.set_ylabel("min over t ≤ T of ‖∇L(θ_t)‖²")
    ax.legend()
    ax.set_title("Convergence on a smooth non-convex multi-domain toy")
    return save_png_and_svg(fig, out)


def main(argv: Sequence[str] | None = None) -> None:
    from iga.utils.io import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/results", help="folder for convergence.json / convergence.png")
    parser.add_argument("--tau", type=float, default=3.0)
    args = parser.parse_args(argv)
    result = convergence_check(tau=args.tau)
    out = Path(args.out)
    atomic_write_json(out / "convergence.json", result)
    plot_convergence(result, out / "convergence.png")
    for method, data in result["methods"].items():
        print(
            f"{method}: slope {data['slope']:.3f}; "
            + ", ".join(f"T={p['T']}: {p['mean']:.2e}" for p in data["per_horizon"])
        )


if __name__ == "__main__":
    main()
