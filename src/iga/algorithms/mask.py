"""The Continuous Gradient Conflict Mask ``M = exp(−τ·V̂)`` (docs/method.md §1, steps 2–4)."""

from __future__ import annotations

import torch
from torch import Tensor

VARIANCE_NORMS = ("relative", "layer", "none")
#: Which disagreement statistic the mask reads (docs/method.md §3, issue #17).
MASK_STATS = ("variance", "sign")
#: Mask spaces whose statistic is shared by a group of a weight's coordinates (one value per row, per column, per
#: layer), and the dims of an ``(m, n)`` weight gradient it is averaged over.
GROUPED_SPACES = {"row": (1,), "column": (0,), "layer": (0, 1)}


def _check_norm(variance_norm: str) -> None:
    if variance_norm not in VARIANCE_NORMS:
        raise ValueError(f"variance_norm must be one of {VARIANCE_NORMS}, got {variance_norm!r}")


def domain_statistics(domain_grads: Tensor) -> tuple[Tensor, Tensor]:
    """``(Ḡ, V)``: mean over domains and population variance over domains (clamped ≥ 0), in at least fp32.

    ``domain_grads`` is (K, ...) with K ≥ 2. Two passes (mean, then centred squares accumulated one domain at a
    time): numerically stable and only two extra gradient-sized buffers. ``torch.var_mean(dim=0)`` gives the same
    numbers but was measured ~100× slower on CPU for (4, 344, 128) (a strided reduction over the outer dim).
    """
    if domain_grads.dim() < 1 or domain_grads.shape[0] < 2:
        raise ValueError(
            f"domain_grads must be (K, ...) with K >= 2 domains, got shape {tuple(domain_grads.shape)}"
        )
    g = domain_grads.to(torch.promote_types(domain_grads.dtype, torch.float32))
    k_dom = g.shape[0]
    mean = g.sum(0).div_(k_dom)
    var = torch.zeros_like(mean)
    centred = torch.empty_like(mean)
    for k in range(k_dom):
        torch.sub(g[k], mean, out=centred)
        var.addcmul_(centred, centred)
    return mean, var.div_(k_dom).clamp_(min=0)


def normalised_variance(
    var: Tensor,
    mean_sq: Tensor,
    variance_norm: str = "relative",
    eps: float = 1e-12,
    *,
    inplace: bool = False,
) -> Tensor:
    """``V̂`` from the variance ``V`` and the squared mean ``Ḡ²`` (both possibly EMA-smoothed).

    * ``relative``: ``V / (Ḡ² + V + ε)`` ∈ [0, 1) — the share of the second moment that is disagreement;
    * ``layer``: ``V / (mean(V) + ε)`` — variance relative to the layer's average variance;
    * ``none``: ``V``.

    ``inplace=True`` overwrites ``var`` (and ``mean_sq`` under ``relative``) instead of allocating: the optimizer
    uses it because fresh gradient-sized CPU buffers cost page faults that dominated the mask's run time.
    """
    _check_norm(variance_norm)
    if variance_norm == "relative":
        denom = mean_sq.add_(var) if inplace else mean_sq + var
        denom.add_(eps)
        return var.div_(denom) if inplace else var / denom
    if variance_norm == "layer":
        scale = var.mean() + eps
        return var.div_(scale) if inplace else var / scale
    return var


def conflict_mask(
    domain_grads: Tensor, tau: float, variance_norm: str = "relative", eps: float = 1e-12
) -> Tensor:
    """The mask ``M = exp(−τ·V̂)`` over the coordinates of one gradient, from (K, ...) per-domain gradients.

    ``Ḡ = mean_k G_k``, ``V = mean_k (G_k − Ḡ)²`` (population variance, fp32 or wider, clamped ≥ 0), ``V̂`` as
    in :func:`normalised_variance`. Identical domain gradients give ``M = 1``; exactly opposing ones (``Ḡ = 0``)
    give ``V̂ → 1`` under ``relative`` and hence ``M → e^{−τ}``.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 2.0], [1.0, -2.0]])      # coordinate 0 agrees, coordinate 1 cancels
        >>> conflict_mask(g, tau=3.0)
        tensor([1.0000, 0.0498])
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    mean, var = domain_statistics(domain_grads)
    return torch.exp(-tau * normalised_variance(var, mean * mean, variance_norm, eps))


def sign_disagreement(domain_grads: Tensor) -> Tensor:
    """``1 − |mean_k sign(G_k)|`` ∈ [0, 1] per coordinate of (K, ...) per-domain gradients (``mask_stat="sign"``).

    0 where every domain's gradient has the same sign, 1 where the signs cancel exactly: the share of domains
    agreeing in sign (SAND-mask's statistic, Shahtalebi et al. 2021) put into IGA's ``exp(−τ·)`` form, so that
    "variance vs sign" can be measured rather than assumed. A coordinate where every domain's gradient is exactly 0
    gets 1 (the masked mean is 0 there anyway).

    Example:
        >>> import torch
        >>> sign_disagreement(torch.tensor([[1.0, 2.0, 3.0], [4.0, -2.0, 5.0], [0.5, 1.0, -1.0]]))
        tensor([0.0000, 0.6667, 0.6667])
    """
    if domain_grads.dim() < 1 or domain_grads.shape[0] < 1:
        raise ValueError(f"domain_grads must be (K, ...) with K >= 1, got shape {tuple(domain_grads.shape)}")
    dtype = torch.promote_types(domain_grads.dtype, torch.float32)
    return torch.sign(domain_grads).to(dtype).mean(0).abs_().neg_().add_(1)


def grouped_dims(mask_space: str, ndim: int) -> tuple[int, ...]:
    """The dims of one parameter's gradient (``ndim`` = 2 for a weight, 1 for a bias) that share one statistic
    under ``mask_space``: none for ``coordinate``; a weight's columns for ``row`` (one value per output unit), its
    rows for ``column`` (one per input unit), everything for ``layer``. A bias (one entry per output unit) has a
    value per entry under ``row`` and one value under ``column`` and ``layer`` (it is the weight's column of a
    constant input)."""
    if mask_space not in GROUPED_SPACES:
        return ()
    if ndim == 2:
        return GROUPED_SPACES[mask_space]
    return () if mask_space == "row" else tuple(range(ndim))


def direction_mask(
    domain_grads: Tensor,
    u: Tensor,
    vh: Tensor,
    *,
    tau: float,
    mask_stat: str = "variance",
    variance_norm: str = "relative",
    eps: float = 1e-12,
) -> tuple[Tensor, Tensor]:
    """``(M, V̂)`` per direction for ``mask_space="subspace"``: the statistic of each domain's coefficient
    ``c_ki = u_iᵀ G_k v_i`` along the directions ``(u_i, v_i)`` (columns of ``u`` (m, r), rows of ``vh`` (r, n)),
    from (K, m, n) per-domain gradients; ``M = exp(−τ·V̂)`` is (r,).

    Example (direction 0: both domains agree; direction 1: they cancel):
        >>> import torch
        >>> g = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, -1.0]]])
        >>> mask, vhat = direction_mask(g, torch.eye(2), torch.eye(2), tau=3.0)
        >>> mask
        tensor([1.0000, 0.0498])
    """
    coeffs = torch.einsum("mr,kmn,rn->kr", u, domain_grads.to(u.dtype), vh)
    if mask_stat == "sign":
        vhat = sign_disagreement(coeffs)
    else:
        mean, var = domain_statistics(coeffs)
        vhat = normalised_variance(var, mean.square(), variance_norm, eps)
    return torch.exp(-tau * vhat), vhat
