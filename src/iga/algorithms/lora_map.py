"""Map a full-matrix gradient ``G`` (m×n) of ``W = W0 + s·B·A`` back to gradients of the LoRA factors
(docs/method.md §1, steps 5–6).

* ``chain``: what autograd would return if ``G`` were the true ``∂L/∂W``: ``∇B = s·G·Aᵀ``, ``∇A = s·Bᵀ·G``.
* ``lora_pro``: the least-squares factor gradients whose first-order effect on ``W``,
  ``g̃ = s(B·∇A + ∇B·A)``, is closest to ``G`` (LoRA-Pro, Wang et al., ICLR 2025): ``g̃`` is the tangent-space
  projection ``P_B G + G P_A − P_B G P_A`` and the residual satisfies ``Bᵀ·res = 0``, ``res·Aᵀ = 0``. Among the
  solutions (free ``r×r`` matrix ``X``) the one closest to the chain gradients is taken (a Sylvester equation).
  ``(BᵀB)⁻¹`` and ``(AAᵀ)⁻¹`` are damped, ``pinv(M + damping·I)``, because PEFT starts from ``B = 0``.

Both maps only need the products ``G·Aᵀ`` and ``Bᵀ·G``, so a rank-r projection ``U_r Σ_r V_rᵀ`` is never
densified.
"""

from __future__ import annotations

import torch
from torch import Tensor

from iga.algorithms.projection import DEFAULT_EXACT_MAX_NUMEL, truncated_svd

LORA_MAPS = ("chain", "lora_pro")


def _solve_sylvester_psd(left: Tensor, right: Tensor, rhs: Tensor) -> Tensor:
    """Minimum-norm ``X`` with ``left·X + X·right = rhs`` for symmetric PSD ``left``, ``right`` (r×r)."""
    lam, p = torch.linalg.eigh(left)
    mu, q = torch.linalg.eigh(right)
    denom = lam.clamp(min=0)[:, None] + mu.clamp(min=0)[None, :]
    tol = denom.max().clamp(min=torch.finfo(denom.dtype).tiny) * denom.shape[0] * torch.finfo(denom.dtype).eps
    inv = torch.where(denom > tol, 1.0 / denom.clamp(min=tol), torch.zeros_like(denom))
    return p @ ((p.mT @ rhs @ q) * inv) @ q.mT


def map_products(
    g_at: Tensor,
    bt_g: Tensor,
    A: Tensor,
    B: Tensor,
    scaling: float,
    lora_map: str = "chain",
    damping: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """``(grad_A, grad_B)`` from ``g_at = G·Aᵀ`` (m×r) and ``bt_g = Bᵀ·G`` (r×n)."""
    if lora_map == "chain":
        return scaling * bt_g, scaling * g_at
    if lora_map != "lora_pro":
        raise ValueError(f"lora_map must be one of {LORA_MAPS}, got {lora_map!r}")
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    btb, aat = B.mT @ B, A @ A.mT
    inv_btb = torch.linalg.pinv(btb + damping * eye, hermitian=True)
    inv_aat = torch.linalg.pinv(aat + damping * eye, hermitian=True)
    bt_g_at = bt_g @ A.mT
    a0 = (inv_btb @ bt_g) / scaling
    b0 = ((g_at - B @ (inv_btb @ bt_g_at)) @ inv_aat) / scaling
    # X minimising ‖a0 + XA − s·BᵀG‖² + ‖b0 − BX − s·GAᵀ‖² (stays closest to the chain gradients):
    # BᵀB X + X AAᵀ = (s·BᵀG − a0)Aᵀ + Bᵀ(b0 − s·GAᵀ).
    rhs = (scaling * bt_g - a0) @ A.mT + B.mT @ b0 - scaling * bt_g_at
    x = _solve_sylvester_psd(btb, aat, rhs)
    return a0 + x @ A, b0 - B @ x


def project_products(
    G: Tensor,
    A: Tensor,
    B: Tensor,
    svd_rank: int | None = None,
    *,
    svd_exact_max_numel: int = DEFAULT_EXACT_MAX_NUMEL,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(G_r·Aᵀ, Bᵀ·G_r, energy)`` with ``G_r`` the best rank-``svd_rank`` approximation of ``G`` (``G`` itself
    when ``svd_rank`` is None or ≥ min(m, n)) and ``energy = ‖G_r‖²/‖G‖²`` (a 0-d tensor, 1 without projection)."""
    m, n = G.shape
    if svd_rank is None or svd_rank >= min(m, n):
        return G @ A.mT, B.mT @ G, torch.ones((), dtype=G.dtype, device=G.device)
    u, s, vh = truncated_svd(G, svd_rank, exact_max_numel=svd_exact_max_numel, generator=generator)
    us = u * s
    energy = s.square().sum() / torch.linalg.vector_norm(G).square().clamp(min=torch.finfo(G.dtype).tiny)
    return us @ (vh @ A.mT), (B.mT @ us) @ vh, energy


def lora_factor_grads(
    G: Tensor,
    A: Tensor,
    B: Tensor,
    scaling: float,
    svd_rank: int | None = None,
    lora_map: str = "chain",
    *,
    damping: float = 1e-6,
    svd_exact_max_numel: int = DEFAULT_EXACT_MAX_NUMEL,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Gradients ``(grad_A, grad_B)`` of the LoRA factors for a full-matrix gradient ``G`` of
    ``W = W0 + scaling·B·A`` (``A``: r×n, ``B``: m×r, ``G``: m×n): optional truncated SVD of ``G`` to rank
    ``svd_rank``, then the ``chain`` or ``lora_pro`` map. Computed in at least fp32, returned in that dtype.

    Example:
        >>> import torch
        >>> G, A, B = torch.randn(5, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
        >>> gA, gB = lora_factor_grads(G, A, B, scaling=2.0)
        >>> torch.allclose(gA, 2.0 * B.T @ G) and torch.allclose(gB, 2.0 * G @ A.T)
        True
    """
    if G.dim() != 2 or A.dim() != 2 or B.dim() != 2:
        raise ValueError("G, A and B must be 2-D (m×n, r×n, m×r)")
    (m, n), r = G.shape, A.shape[0]
    if A.shape != (r, n) or B.shape != (m, r):
        raise ValueError(
            f"shapes do not fit W = W0 + s·B·A: G {tuple(G.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}"
        )
    if lora_map not in LORA_MAPS:
        raise ValueError(f"lora_map must be one of {LORA_MAPS}, got {lora_map!r}")
    dtype = torch.promote_types(G.dtype, torch.float32)
    G, A, B = G.to(dtype), A.to(dtype), B.to(dtype)
    g_at, bt_g, _ = project_products(
        G, A, B, svd_rank, svd_exact_max_numel=svd_exact_max_numel, generator=generator
    )
    return map_products(g_at, bt_g, A, B, scaling, lora_map, damping)


def equivalent_gradient(grad_A: Tensor, grad_B: Tensor, A: Tensor, B: Tensor, scaling: float) -> Tensor:
    """First-order change of ``W`` per unit step along the factor gradients: ``s(B·∇A + ∇B·A)``."""
    return scaling * (B @ grad_A + grad_B @ A)


def tangent_projection(G: Tensor, A: Tensor, B: Tensor) -> Tensor:
    """Projection of ``G`` onto the tangent space of the rank-r manifold at ``B·A``:
    ``P_B G + G P_A − P_B G P_A`` with ``P_B = B(BᵀB)⁺Bᵀ``, ``P_A = Aᵀ(AAᵀ)⁺A``."""
    p_b = B @ torch.linalg.pinv(B.mT @ B) @ B.mT
    p_a = A.mT @ torch.linalg.pinv(A @ A.mT) @ A
    return p_b @ G + G @ p_a - p_b @ G @ p_a
