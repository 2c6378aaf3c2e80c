"""DESIGN §3 "Scale of τ": on a toy logistic problem with one invariant feature and one domain-dependent cue,
IGA leaves the cue's weight far below ERM's while keeping the invariant feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iga import create_iga_optimizer

RELIABILITY = (0.95, 0.85, 0.7, 0.55)


def _toy_data(n: int = 300, seed: int = 0):
    # Paired "isomers": every domain renders the same instances (same label noise, same invariant feature) and
    # only the cue differs, agreeing with the label with a domain-specific probability.
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1
    y = torch.where(torch.rand(n, generator=gen, dtype=torch.float64) < 0.25, -z, z)
    invariant = z + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
    xs, ds = [], []
    for k, reliability in enumerate(RELIABILITY):
        cue = torch.where(torch.rand(n, generator=gen, dtype=torch.float64) < reliability, y, -y)
        xs.append(torch.stack([invariant, cue], 1))
        ds.append(torch.full((n,), k))
    return torch.cat(xs), y.repeat(len(RELIABILITY)), torch.cat(ds)


def _train(tau: float | None, steps: int = 300) -> torch.Tensor:
    x, y, domains = _toy_data()
    k_dom = len(RELIABILITY)
    net = torch.nn.Linear(2, 1).double()
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    if tau is None:
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
    else:
        opt = create_iga_optimizer(net, lr=0.5, base="sgd", tau=tau)

    def objective():
        per_row = F.softplus(-y * net(x).squeeze(1))
        return torch.stack([per_row[domains == k].mean() for k in range(k_dom)]).mean()

    for _ in range(steps):
        opt.zero_grad()
        if tau is None:
            objective().backward()
        else:
            with opt.capture.domains(domains, num_domains=k_dom):
                objective().backward()
        opt.step()
    return net.weight.detach().flatten()


def test_iga_suppresses_the_spurious_cue_relative_to_erm():
    erm_invariant, erm_cue = _train(None).tolist()
    iga_invariant, iga_cue = _train(10.0).tolist()
    assert erm_cue > 0.8  # ERM leans on the cue (it is the most predictive feature in two domains)
    assert iga_cue < 0.5 * erm_cue
    assert iga_invariant > 0.8 * erm_invariant
    # tau = 0 is ERM exactly, so the gap above is IGA's doing.
    assert torch.allclose(
        _train(0.0), torch.tensor([erm_invariant, erm_cue], dtype=torch.float64), rtol=1e-12
    )


def _train_minibatch(
    tau: float | None, *, rows_per_domain: int = 4, steps: int = 600, **options
) -> torch.Tensor:
    """SGD on paired minibatches: the same ``rows_per_domain`` instances drawn from every domain per step (an
    isomer batch), so per-domain gradients carry sampling noise as in the LoRA runs (4 sets per domain)."""
    n, k_dom = 2000, len(RELIABILITY)
    x, y, _ = _toy_data(n=n)
    net = torch.nn.Linear(2, 1).double()
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    if tau is None:
        opt = torch.optim.SGD(net.parameters(), lr=0.2)
    else:
        opt = create_iga_optimizer(net, lr=0.2, base="sgd", tau=tau, **options)
    gen = torch.Generator().manual_seed(0)
    domains = torch.arange(k_dom).repeat_interleave(rows_per_domain)
    for _ in range(steps):
        idx = torch.randint(0, n, (rows_per_domain,), generator=gen)
        rows = torch.cat([idx + k * n for k in range(k_dom)])
        xb, yb = x[rows], y[rows]

        def objective(xb=xb, yb=yb):
            per_row = F.softplus(-yb * net(xb).squeeze(1))
            return per_row.view(k_dom, rows_per_domain).mean(1).mean()

        opt.zero_grad()
        if tau is None:
            objective().backward()
        else:
            with opt.capture.domains(domains, num_domains=k_dom):
                objective().backward()
        opt.step()
    return net.weight.detach().flatten()


def test_with_noisy_per_domain_batches_the_mask_needs_statistics_averaged_over_steps():
    """At 4 rows per domain the per-step V̂ is mostly sampling noise: per-step IGA barely moves the cue's weight
    (and costs invariant weight), while an EMA of V and Ḡ² over steps (``ema_beta``) suppresses the cue again and
    keeps the invariant feature. Measured over 5 seeds (docs/results.md §6): cue ERM 1.19, per-step 1.08, β = 0.9
    0.30; invariant 1.18, 0.83, 1.08."""
    erm_invariant, erm_cue = _train_minibatch(None).tolist()
    step_invariant, step_cue = _train_minibatch(10.0).tolist()
    ema_invariant, ema_cue = _train_minibatch(10.0, ema_beta=0.9).tolist()
    assert erm_cue > 1.0
    assert step_cue > 0.8 * erm_cue  # the noise floor: per-step statistics do not find the cue
    assert step_invariant < 0.8 * erm_invariant  # ... and the near-uniform small mask slows everything
    assert ema_cue < 0.4 * erm_cue
    assert ema_invariant > 0.85 * erm_invariant
