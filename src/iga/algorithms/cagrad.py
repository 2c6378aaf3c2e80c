"""CAGrad (Liu et al. 2021): the update within a ball around the mean gradient that helps the worst domain most."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm
from iga.algorithms.gradient_wrapper import FactorGradOptimizer, combine_domains, gramian
from iga.algorithms.hparam_checks import check_choice, check_number, check_optional_positive
from iga.algorithms.registry import register_algorithm
from iga.distributed import check_stats_scope
from iga.gradients.capture import DomainGradCapture

CAGRAD_RESCALES = (0, 1, 2)
# Exact active-set enumeration visits 2^K − 1 faces of the simplex; above this K the iterative solver runs.
MAX_ENUMERATED_DOMAINS = 6


@dataclass
class CAGradHParams:
    """CAGrad options (LibMTL names and defaults).

    Attributes:
        calpha: radius c ≥ 0 of the ball around ḡ, in units of ‖ḡ‖ (0 = ERM). LibMTL default 0.5.
        rescale: 0 — ``d``; 1 — ``d / (1 + c²)`` (LibMTL default); 2 — ``d / (1 + c)``.
        max_grad_norm: clip after the rewrite (None = off); the trainer passes its own clip value here.
        stats_scope: under DDP, ``"global"`` averages the per-domain factor gradients across ranks before
            combining them (exact large-batch semantics; K × LoRA-sized traffic), ``"local"`` combines per rank
            and averages the result.
    """

    calpha: float = 0.5
    rescale: int = 1
    max_grad_norm: float | None = None
    stats_scope: str = "global"

    def __post_init__(self) -> None:
        check_stats_scope(self.stats_scope, "cagrad.stats_scope")
        check_number(self, "calpha", min_value=0)
        check_choice(self, "rescale", CAGRAD_RESCALES)
        check_optional_positive(self, "max_grad_norm")


def _objective(a: np.ndarray, p: np.ndarray, c: float, w: np.ndarray) -> float:
    return float(p @ w + c * math.sqrt(max(float(w @ a @ w), 0.0)))


def _enumerate_faces(a: np.ndarray, p: np.ndarray, c: float, tol: float) -> np.ndarray | None:
    """The minimiser by KKT on each face S of the simplex, or None when no face yields one (degenerate Gramian).

    On the relative interior of S the optimality conditions ``p_S + c·A_S w_S / s = μ·1``, ``1ᵀw_S = 1``,
    ``s² = w_Sᵀ A_S w_S`` solve in closed form: with ``a = A_S⁻¹1``, ``q = A_S⁻¹p_S``, ``α = 1ᵀa``, ``β = 1ᵀq``,
    ``γ = p_Sᵀq``: ``μ = (β + √(β² − α(γ − c²)))/α`` and ``w_S = (μa − q)/(μα − β)``. A candidate is accepted when
    ``w_S ≥ 0`` and the gradient outside S is ``≥ μ`` (the objective is convex, so any KKT point is optimal).
    """
    k_dom = a.shape[0]
    best, best_value = None, math.inf
    for size in range(1, k_dom + 1):
        for face in itertools.combinations(range(k_dom), size):
            idx = list(face)
            a_s = a[np.ix_(idx, idx)]
            try:
                inv_one = np.linalg.solve(a_s, np.ones(size))
                inv_p = np.linalg.solve(a_s, p[idx])
            except np.linalg.LinAlgError:
                continue
            alpha, beta, gamma = inv_one.sum(), inv_p.sum(), p[idx] @ inv_p
            disc = beta * beta - alpha * (gamma - c * c)
            if alpha <= 0 or disc <= 0:
                continue
            mu = (beta + math.sqrt(disc)) / alpha
            w = np.zeros(k_dom)
            w[idx] = (mu * inv_one - inv_p) / math.sqrt(disc)
            if (w < -tol).any():
                continue
            s = math.sqrt(max(float(w @ a @ w), 0.0))
            if s <= 0:
                continue
            grad = p + c * (a @ w) / s
            outside = [k for k in range(k_dom) if k not in face]
            if outside and (grad[outside] < mu - tol).any():
                continue
            w = np.clip(w, 0.0, None)
            w /= w.sum()
            value = _objective(a, p, c, w)
            if value < best_value:
                best, best_value = w, value
    return best


def _project_simplex(v: np.ndarray) -> np.ndarray:
    # Euclidean projection onto {w ≥ 0, Σw = 1} (Held et al. 1974; Duchi et al. 2008).
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.nonzero(u * np.arange(1, len(v) + 1) > css)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def _projected_gradient(a: np.ndarray, p: np.ndarray, c: float, iters: int = 2000) -> np.ndarray:
    """Projected gradient descent with backtracking from the uniform weights (the fallback solver)."""
    k_dom = a.shape[0]
    w = np.full(k_dom, 1.0 / k_dom)
    value = _objective(a, p, c, w)
    step = 1.0
    for _ in range(iters):
        s = math.sqrt(max(float(w @ a @ w), 0.0))
        grad = p + (c * (a @ w) / s if s > 0 else 0.0)
        while True:
            candidate = _project_simplex(w - step * grad)
            new_value = _objective(a, p, c, candidate)
            move = candidate - w
            # Sufficient decrease of projected gradient descent: f(w⁺) ≤ f(w) + ∇fᵀ(w⁺ − w) + ‖w⁺ − w‖²/(2·step).
            if new_value <= value + float(grad @ move) + float(move @ move) / (2 * step) or step < 1e-12:
                break
            step *= 0.5
        if np.abs(candidate - w).max() < 1e-13:
            return candidate
        w, value, step = candidate, new_value, step * 2.0
    return w


def cagrad_weights(
    gram: Tensor, calpha: float, rescale: int = 1, *, method: str = "auto"
) -> tuple[Tensor, Tensor]:
    """``(coefficients, w)``: the update ``d = Σ_k coefficients_k g_k`` and the simplex weights ``w``, from the
    (K, K) Gramian alone.

    ``w = argmin_{w ∈ Δ} wᵀAb + c·√(wᵀAw)`` (``b = 1/K``, ``c = calpha·‖ḡ‖``, ``‖ḡ‖² = mean(A)``), i.e.
    ``g_wᵀḡ + c‖g_w‖``; then ``d = ḡ + (c/‖g_w‖)·g_w``, divided by ``1 + calpha²`` (``rescale=1``) or
    ``1 + calpha`` (``rescale=2``). ``method="auto"`` solves exactly by enumerating the faces of the simplex
    (K ≤ 6) and falls back to projected gradient descent (also forced with ``method="iterative"``).

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])          # orthogonal: w = (½, ½), d = (1 + c)·ḡ
        >>> coeffs, w = cagrad_weights((g @ g.T).double(), calpha=0.5, rescale=0)
        >>> (coeffs.float() @ g).tolist(), w.tolist()
        ([0.75, 0.75], [0.5, 0.5])
    """
    if rescale not in CAGRAD_RESCALES:
        raise ValueError(f"rescale must be one of {CAGRAD_RESCALES}, got {rescale!r}")
    if method not in ("auto", "iterative"):
        raise ValueError(f"method must be 'auto' or 'iterative', got {method!r}")
    a = gram.double().cpu().numpy()
    # w and c/‖g_w‖ are invariant to scaling A; unit scale makes the solvers' tolerances absolute.
    scale = float(np.abs(np.diag(a)).max()) if a.size else 0.0
    a = a / scale if scale > 0 and math.isfinite(scale) else a
    k_dom = a.shape[0]
    uniform = np.full(k_dom, 1.0 / k_dom)
    p = a @ uniform
    c = calpha * math.sqrt(max(float(a.mean()), 0.0))
    if c == 0:
        w = uniform
        coeffs = uniform.copy()
    else:
        w = None
        if method == "auto" and k_dom <= MAX_ENUMERATED_DOMAINS:
            w = _enumerate_faces(a, p, c, tol=1e-10)
        if w is None:
            w = _projected_gradient(a, p, c)
        norm_gw = math.sqrt(max(float(w @ a @ w), 0.0))
        coeffs = uniform + (c / norm_gw) * w if norm_gw > 0 else uniform.copy()
    if rescale == 1:
        coeffs = coeffs / (1 + calpha**2)
    elif rescale == 2:
        coeffs = coeffs / (1 + calpha)
    return torch.from_numpy(coeffs), torch.from_numpy(np.asarray(w, dtype=np.float64))


class CAGradOptimizer(FactorGradOptimizer):
    """Writes the CAGrad update (one Gramian over all captured parameters) into ``.grad``."""

    method = "cagrad"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, capture: DomainGradCapture, hparams: CAGradHParams
    ) -> None:
        super().__init__(
            base_optimizer, capture, max_grad_norm=hparams.max_grad_norm, stats_scope=hparams.stats_scope
        )
        self.hparams = hparams

    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        coeffs, w = cagrad_weights(gramian(domain_grads.values()), self.hparams.calpha, self.hparams.rescale)
        self._metrics.update({f"weight/{k}": float(v) for k, v in enumerate(w.tolist())})
        return combine_domains(domain_grads, coeffs)


@register_algorithm("cagrad")
class CAGrad(Algorithm):
    """Conflict-averse gradient descent: maximise the worst domain's improvement ``min_k g_kᵀd`` over the ball
    ``‖d − ḡ‖ ≤ c‖ḡ‖``; solved in its K-dimensional dual on the simplex from the (K, K) Gramian.

    Gradient-side (``capture_space = "factor"``): per-domain LoRA-factor gradients from one backward; the Gramian
    and the update run over the whole concatenated LoRA gradient vector (LibMTL's "shared parameters").

    Deviations from LibMTL's ``CAGrad``: the simplex problem is solved exactly (KKT on each face; projected gradient
    descent as fallback) instead of with ``scipy.optimize.minimize`` (SLSQP, default tolerance); no ``1e-8``
    smoothing terms (``c = 0`` or ``g_w = 0`` give ``d = ḡ`` exactly); clipping after the rewrite.
    """

    capture_space = "factor"
    clips_gradients = True
    hparams_cls = CAGradHParams

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        return CAGradOptimizer(base_optimizer, capture, self.hparams)
