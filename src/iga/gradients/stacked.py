"""IGA's per-layer math on a stack of same-shape layers, as batched kernels (issue #20).

:class:`~iga.algorithms.iga.IGAOptimizer` used to run the statistics, the mask, the rank-r projection and the map
to the LoRA factors one layer at a time. On small layers that work is bound by the number of kernel launches
(~50 per layer), not by arithmetic, so layers of the same shape are stacked into one ``(L, K, m, n)`` tensor (see
:mod:`iga.gradients.grouping` for how the stack is filled under a memory bound) and every step below is one
batched call for the whole stack. Each function computes, per layer, exactly what its per-layer counterpart does:

* :func:`stacked_statistics` — ``Ḡ`` and the population variance ``V`` over the K domains (two passes), as
  :func:`iga.algorithms.mask.domain_statistics`;
* :func:`stacked_mask` — ``V̂``, ``M = exp(−τ·V̂)`` and ``G̃ = M ⊙ Ḡ`` in place, as ``IGAOptimizer``'s per-layer
  path (``variance_norm="layer"`` and ``rescale`` are per layer); :func:`stacked_sign_masked_mean` the same with
  the sign statistic (``mask_stat="sign"``);
* :func:`stacked_truncated_svd` — the exact or randomized rank-r SVD of
  :func:`iga.algorithms.projection.truncated_svd`; the randomized range finder draws each layer's test matrix from
  that layer's own generator, so a layer gets the same projection alone or in a stack;
* :func:`stacked_project_products` — ``(G_r Aᵀ, Bᵀ G_r, energy)`` of
  :func:`iga.algorithms.lora_map.project_products`.

The results equal the per-layer path to floating-point tolerance (the batched and the looped LAPACK/BLAS calls
may round differently); ``tests/gradients/test_stacked.py`` pins that in float64.

:func:`flat_statistics` and :func:`flat_mask` are the ``mask_space="factor"`` counterparts: the mask of every captured
LoRA factor at once, from per-domain factor gradients laid side by side in one ``(K, P)`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# The constants come from iga.algorithms (one source of truth), imported at call time: iga.algorithms imports
# this module, so a module-level import would be circular.


def _check_norm(variance_norm: str) -> None:
    from iga.algorithms.mask import VARIANCE_NORMS

    if variance_norm not in VARIANCE_NORMS:
        raise ValueError(f"variance_norm must be one of {VARIANCE_NORMS}, got {variance_norm!r}")


def stacked_statistics(stack: Tensor) -> tuple[Tensor, Tensor]:
    """``(Ḡ, V)`` of every layer of an ``(L, K, m, n)`` stack: mean and population variance over the domains
    (dim 1), each ``(L, m, n)``, in at least fp32, ``V`` clamped ≥ 0.

    The same two passes as :func:`~iga.algorithms.mask.domain_statistics` (mean, then the centred squares added
    one domain at a time), so the numbers are those of the per-layer path.
    """
    g = _checked_stack(stack)
    k_dom = g.shape[1]
    mean = _domain_sum(g).div_(k_dom)
    var = torch.zeros_like(mean)
    centred = torch.empty_like(mean)
    for k in range(k_dom):
        torch.sub(g[:, k], mean, out=centred)
        var.addcmul_(centred, centred)
    return mean, var.div_(k_dom).clamp_(min=0)


def _domain_sum(g: Tensor) -> Tensor:
    # Σ_k g[:, k] by K − 1 adds, in the order of sum(1); measured 1.6× faster than sum(1) on (8, 4, 688, 256).
    total = torch.add(g[:, 0], g[:, 1])
    for k in range(2, g.shape[1]):
        total.add_(g[:, k])
    return total


def _below_half(mask: Tensor) -> Tensor:
    # count_nonzero reads the comparison as it is; .sum() of a bool tensor first copies it to int64 (measured
    # 1.8× slower, the largest elementwise cost of the mask after exp).
    return torch.count_nonzero(mask < 0.5).to(mask.dtype)


def stacked_relative_masked_mean(
    stack: Tensor, *, tau: float, eps: float = 1e-12, rescale: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(G̃, Ḡ, sums)`` for an ``(L, K, m, n)`` stack under the default options (``variance_norm="relative"``,
    no EMA) with the fewest passes over memory: on layers of a few MiB the mask is bound by memory traffic, not by
    arithmetic.

    Mathematically the same as :func:`stacked_statistics` then :func:`stacked_mask`: with ``C = Σ_k (G_k − Ḡ)²``
    (so ``V = C/K``), ``V̂ = V/(Ḡ² + V + ε) = C/(K·Ḡ² + C + K·ε)``. The division by K, the clamp (``C`` is a
    sum of squares) and ``Ḡ²`` are folded into one ``addcmul``, 3K + 9 passes instead of 3K + 14; the numbers
    agree to rounding. ``Ḡ`` is returned for the caller's ``rescale``-free checks; ``sums`` as in
    :func:`stacked_mask`.
    """
    g = _checked_stack(stack)
    k_dom = g.shape[1]
    mean = _domain_sum(g).div_(k_dom)
    centred = torch.sub(g[:, 0], mean)
    sq_dev = centred.square()
    for k in range(1, k_dom):
        torch.sub(g[:, k], mean, out=centred)
        sq_dev.addcmul_(centred, centred)
    denom = torch.addcmul(sq_dev, mean, mean, value=k_dom, out=centred).add_(k_dom * eps)
    masked, sums = _masked_from_vhat(sq_dev.div_(denom), mean, tau=tau, eps=eps, rescale=rescale)
    return masked, mean, sums


def stacked_sign_masked_mean(
    stack: Tensor, *, tau: float, eps: float = 1e-12, rescale: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(G̃, Ḡ, sums)`` for an ``(L, K, m, n)`` stack under ``mask_stat="sign"`` (no EMA): ``V̂ = 1 − |mean_k
    sign(G_k)|`` (:func:`iga.algorithms.mask.sign_disagreement`), ``M = exp(−τ·V̂)``, ``G̃ = M ⊙ Ḡ``; ``sums`` as
    in :func:`stacked_mask`. The sign sum is exact in any float type (K small integers), so ``V̂`` equals the
    per-layer path's bit for bit."""
    g = _checked_stack(stack)
    k_dom = g.shape[1]
    mean = _domain_sum(g).div_(k_dom)
    signs = torch.sign(g[:, 0])
    scratch = torch.empty_like(signs)
    for k in range(1, k_dom):
        signs.add_(torch.sign(g[:, k], out=scratch))
    vhat = signs.div_(k_dom).abs_().neg_().add_(1)
    masked, sums = _masked_from_vhat(vhat, mean, tau=tau, eps=eps, rescale=rescale)
    return masked, mean, sums


def _checked_stack(stack: Tensor) -> Tensor:
    """An ``(L, K, m, n)`` stack with K ≥ 2 domains, in at least fp32."""
    if stack.dim() != 4 or stack.shape[1] < 2:
        raise ValueError(f"stack must be (L, K, m, n) with K >= 2 domains, got shape {tuple(stack.shape)}")
    return stack.to(torch.promote_types(stack.dtype, torch.float32))


def _masked_from_vhat(
    vhat: Tensor, mean: Tensor, *, tau: float, eps: float, rescale: bool
) -> tuple[Tensor, Tensor]:
    """``(G̃, sums)`` from ``V̂`` in place: ``M = exp(−τ·V̂)``, ``G̃ = M ⊙ Ḡ`` (per-layer ``rescale``), and the
    3-vector (Σ M, #{M < 1/2}, Σ V̂) for the optimizer's metrics."""
    vhat_sum = vhat.sum()
    mask = vhat.mul_(-tau).exp_()
    sums = torch.stack([mask.sum(), _below_half(mask), vhat_sum])
    masked = mask.mul_(mean)
    if rescale:
        _rescale(masked, mean, eps)
    return masked, sums


def _rescale(masked: Tensor, mean: Tensor, eps: float) -> None:
    dims = _per_layer(masked)
    norms = torch.linalg.vector_norm(masked, dim=dims, keepdim=True).clamp_(min=eps)
    masked.mul_(torch.linalg.vector_norm(mean, dim=dims, keepdim=True).div_(norms))


def _per_layer(t: Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


def stacked_mask(
    mean: Tensor,
    var: Tensor,
    mean_sq: Tensor,
    *,
    tau: float,
    variance_norm: str = "relative",
    eps: float = 1e-12,
    rescale: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(G̃, sums)`` for a stack of layers: ``V̂`` per ``variance_norm``, ``M = exp(−τ·V̂)``, ``G̃ = M ⊙ Ḡ``.

    ``mean``, ``var`` and ``mean_sq`` are ``(L, ...)`` (``mean_sq`` is ``Ḡ²`` or its EMA). ``var`` and
    ``mean_sq`` are overwritten (``G̃`` is returned in ``var``'s storage): fresh gradient-sized buffers cost page
    faults on CPU. ``variance_norm="layer"`` divides by each layer's own mean variance and ``rescale`` keeps each
    layer's ``‖G̃‖ = ‖Ḡ‖``, as the per-layer path does. ``sums`` is the 3-vector (Σ M, #{M < 1/2}, Σ V̂) over the
    whole stack, for the optimizer's metrics.
    """
    _check_norm(variance_norm)
    if variance_norm == "relative":
        denom = mean_sq.add_(var).add_(eps)
        vhat = var.div_(denom)
    elif variance_norm == "layer":
        vhat = var.div_(var.mean(_per_layer(var), keepdim=True).add_(eps))
    else:
        vhat = var
    vhat_sum = vhat.sum()
    mask = vhat.mul_(-tau).exp_()
    sums = torch.stack([mask.sum(), _below_half(mask), vhat_sum])
    masked = mask.mul_(mean)
    if rescale:
        _rescale(masked, mean, eps)
    return masked, sums


def stacked_randomized_svd(
    stack: Tensor, rank: int, *, generators: Sequence[torch.Generator | None], niter: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Approximate top-``rank`` SVD of every ``(m, n)`` matrix of an ``(L, m, n)`` stack: the range finder of
    :func:`~iga.algorithms.projection.randomized_svd` (q = rank + 8 columns, ``niter`` power iterations with a QR
    after every product), batched. Layer l's Gaussian test matrix is drawn from ``generators[l]`` with the same
    call as the per-layer path, so each layer's projection does not depend on the stack it is in.

    The last step takes the SVD of the tall ``(n, q)`` matrix ``Mᵀ Q`` rather than of the wide ``Qᵀ M`` (the same
    factors, transposed): LAPACK was measured 1.6× faster on the tall one for q = 16, n = 128.
    """
    from iga.algorithms.projection import OVERSAMPLE, POWER_ITERS

    niter = POWER_ITERS if niter is None else niter
    num, m, n = stack.shape
    if len(generators) != num:
        raise ValueError(f"need one generator per stacked matrix: {len(generators)} for {num}")
    q = min(rank + OVERSAMPLE, m, n)
    omega = torch.stack(
        [torch.randn(n, q, dtype=stack.dtype, device=stack.device, generator=gen) for gen in generators]
    )
    basis = torch.linalg.qr(stack @ omega).Q
    for _ in range(niter):
        basis = torch.linalg.qr(_mt_times(stack, basis)).Q
        basis = torch.linalg.qr(stack @ basis).Q
    # svd(Qᵀ M) = U S Vh  ⇔  svd(Mᵀ Q) = Vhᵀ S Uᵀ.
    v_small, s, u_small_t = torch.linalg.svd(_mt_times(stack, basis), full_matrices=False)
    u = basis @ u_small_t.mT[..., :rank]
    return u, s[..., :rank], v_small.mT[..., :rank, :]


def _mt_times(stack: Tensor, basis: Tensor) -> Tensor:
    # Mᵀ Q as (Qᵀ M)ᵀ: the same numbers, ~20% faster on CPU for q = 16 (M is read row-major).
    return (basis.mT @ stack).mT


def stacked_truncated_svd(
    stack: Tensor,
    rank: int,
    *,
    exact_max_numel: int,
    generators: Sequence[torch.Generator | None],
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-``rank`` SVD factors ``(U_r, S_r, Vh_r)`` of every matrix of an ``(L, m, n)`` stack, as
    :func:`~iga.algorithms.projection.truncated_svd` per matrix: exact ``torch.linalg.svd`` when ``m·n <=
    exact_max_numel``, the seeded randomized range finder above. The stack must be finite (the caller checks)."""
    _, m, n = stack.shape
    rank = min(rank, m, n)
    if m * n <= exact_max_numel:
        u, s, vh = torch.linalg.svd(stack, full_matrices=False)
        return u[..., :rank], s[..., :rank], vh[..., :rank, :]
    return stacked_randomized_svd(stack, rank, generators=generators)


def stacked_project_products(
    stack: Tensor,
    a: Tensor,
    b: Tensor,
    rank: int | None,
    *,
    exact_max_numel: int,
    generators: Sequence[torch.Generator | None],
) -> tuple[Tensor, Tensor, Tensor]:
    """``(G_r Aᵀ, Bᵀ G_r, energy)`` per layer of an ``(L, m, n)`` stack with factors ``a`` ``(L, r, n)`` and ``b``
    ``(L, m, r)``, as :func:`~iga.algorithms.lora_map.project_products`: ``G_r`` is the best rank-``rank``
    approximation (``G`` itself when ``rank`` is None or ≥ min(m, n), energy 1) and ``energy = ‖G_r‖²/‖G‖²``
    is ``(L,)``. ``G_r`` is never densified."""
    num, m, n = stack.shape
    if rank is None or rank >= min(m, n):
        ones = torch.ones(num, dtype=stack.dtype, device=stack.device)
        return stack @ a.mT, b.mT @ stack, ones
    u, s, vh = stacked_truncated_svd(stack, rank, exact_max_numel=exact_max_numel, generators=generators)
    us = u * s.unsqueeze(-2)
    total = torch.linalg.vector_norm(stack, dim=(-2, -1)).square().clamp(min=torch.finfo(stack.dtype).tiny)
    energy = s.square().sum(-1) / total
    return us @ (vh @ a.mT), (b.mT @ us) @ vh, energy


def flat_statistics(domain_grads: Tensor) -> tuple[Tensor, Tensor]:
    """``(Ḡ, V)`` over the domains of ``(K, P)`` per-domain gradients laid side by side (``mask_space="factor"``:
    every captured LoRA factor, flattened and concatenated), each ``(P,)``, with the two passes of
    :func:`stacked_statistics`. K = 1 is allowed: ``V = 0``, so the mask is 1 and ``G̃`` is the gradient itself."""
    if domain_grads.dim() != 2 or domain_grads.shape[0] < 1:
        raise ValueError(f"domain_grads must be (K, P) with K >= 1, got shape {tuple(domain_grads.shape)}")
    g = domain_grads.to(torch.promote_types(domain_grads.dtype, torch.float32))
    k_dom = g.shape[0]
    mean = g.sum(0).div_(k_dom)
    var = torch.zeros_like(mean)
    centred = torch.empty_like(mean)
    for k in range(k_dom):
        torch.sub(g[k], mean, out=centred)
        var.addcmul_(centred, centred)
    return mean, var.div_(k_dom).clamp_(min=0)


def flat_mask(
    mean: Tensor,
    var: Tensor,
    mean_sq: Tensor,
    *,
    tau: float,
    segments: Sequence[int],
    variance_norm: str = "relative",
    eps: float = 1e-12,
    rescale: bool = False,
    vhat: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(G̃, sums)`` for ``(P,)`` statistics of tensors laid side by side: ``V̂``, ``M = exp(−τ·V̂)``,
    ``G̃ = M ⊙ Ḡ``, elementwise; ``variance_norm="layer"`` and ``rescale`` act per segment (``segments`` = the
    sizes of the concatenated tensors, so per LoRA factor). Overwrites ``var`` and ``mean_sq`` like
    :func:`stacked_mask`; ``sums`` is (Σ M, #{M < 1/2}, Σ V̂). A given ``vhat`` (``mask_stat="sign"``: the sign
    disagreement, overwritten) is used as it is, and ``var``, ``mean_sq`` and ``variance_norm`` are not read."""
    _check_norm(variance_norm)
    sizes = list(segments)
    if sum(sizes) != mean.numel():
        raise ValueError(f"segments sum to {sum(sizes)}, but the statistics have {mean.numel()} entries")
    if vhat is None:
        vhat = _flat_vhat(var, mean_sq, sizes, variance_norm, eps)
    vhat_sum = vhat.sum()
    mask = vhat.mul_(-tau).exp_()
    sums = torch.stack([mask.sum(), _below_half(mask), vhat_sum])
    masked = mask.mul_(mean)
    if rescale:
        ratios = [
            mean_part.norm() / part.norm().clamp(min=eps)
            for part, mean_part in zip(masked.split(sizes), mean.split(sizes), strict=True)
        ]
        masked.mul_(_spread(torch.stack(ratios), sizes))
    return masked, sums


def _flat_vhat(var: Tensor, mean_sq: Tensor, sizes: list[int], variance_norm: str, eps: float) -> Tensor:
    # V̂ in place in var's storage; "layer" normalises per segment (per LoRA factor).
    if variance_norm == "relative":
        return var.div_(mean_sq.add_(var).add_(eps))
    if variance_norm == "layer":
        per_segment = torch.stack([part.mean() for part in var.split(sizes)]).add_(eps)
        return var.div_(_spread(per_segment, sizes))
    return var


def _spread(per_segment: Tensor, sizes: list[int]) -> Tensor:
    return torch.repeat_interleave(per_segment, torch.tensor(sizes, device=per_segment.device))
