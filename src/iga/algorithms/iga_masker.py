"""IGA's aggregator: per-domain gradients in, the masked mean ``G̃ = M ⊙ Ḡ`` out (docs/method.md §1, §3.1).

:class:`ConflictMasker` holds everything between the per-domain gradients and the masked mean: the statistics
(``Ḡ``, ``V``, ``V̂``, or the sign disagreement), their running averages (``ema_beta``, ``domain_ema_beta``) staged
until the optimizer commits a step, the mask in every ``mask_space`` (coordinate / row / column / layer on a
gradient, per direction for ``subspace``, side by side for ``factor``), the ``stat_tokens="logic"`` split, and the
step's metric sums. It never touches a parameter: :class:`~iga.algorithms.iga.IGAOptimizer` decides where a masked
gradient goes (the projection, the LoRA map, ``.grad``), as Opacus keeps its per-sample capture apart from the
optimizer that consumes it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from iga.algorithms.iga_config import IGAConfig
from iga.algorithms.mask import (
    direction_mask,
    domain_statistics,
    grouped_dims,
    normalised_variance,
    sign_disagreement,
)
from iga.algorithms.projection import truncated_svd
from iga.gradients.stacked import (
    flat_mask,
    flat_statistics,
    stacked_mask,
    stacked_relative_masked_mean,
    stacked_sign_masked_mean,
    stacked_statistics,
)


class ConflictMasker:
    """The conflict mask of one :class:`IGAOptimizer`, with its running statistics and the step's metrics.

    Keys name what a statistic belongs to (a layer, ``"<layer>.bias"``, or a captured parameter in factor space);
    the running averages are kept per key. Everything computed during a step is staged: :meth:`commit` makes the
    staged running averages current (a taken step), :meth:`clear` drops them (a skipped or failed step).

    Example:
        >>> import torch
        >>> masker = ConflictMasker(IGAConfig(tau=5.0))
        >>> same = torch.ones(3, 2, 2)  # three domains that agree: V = 0, M = 1, G̃ = Ḡ
        >>> masker.masked_mean("layer", same, tau=5.0).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        >>> masker.metrics()["mask_mean"]
        1.0
    """

    def __init__(self, config: IGAConfig) -> None:
        self.config = config
        #: K, the number of training domains: needed under ``stat_tokens="logic"`` (2K domains are captured).
        self.num_domains: int | None = None
        #: Keep each step's masks in :attr:`masks` (one gradient-sized tensor per key).
        self.keep_masks = False
        self._ema_steps = 0
        self._ema: dict[str, tuple[Tensor, Tensor]] = {}
        self._domain_ema_steps = 0
        self._domain_ema: dict[str, Tensor] = {}
        self.clear()

    # ------------------------------------------------------------ step bookkeeping
    def clear(self) -> None:
        """Drop everything staged since the last :meth:`commit` (statistics, metric sums, kept masks)."""
        self._pending_ema: dict[str, tuple[Tensor, Tensor]] = {}
        self._pending_domain_ema: dict[str, Tensor] = {}
        self._stat_sums: list[Tensor] = []
        self._numel = 0
        #: ``{key: M}`` of this step when :attr:`keep_masks` (``(U_r, M, Vh_r)`` for a subspace mask).
        self.masks: dict[str, Any] = {}

    def commit(self) -> None:
        """Make this step's running averages current (call once per step that was taken)."""
        self._ema.update(self._pending_ema)
        if self._pending_ema:
            self._ema_steps += 1
        self._domain_ema.update(self._pending_domain_ema)
        if self._pending_domain_ema:
            self._domain_ema_steps += 1

    def record(self, sums: Tensor, numel: int) -> None:
        """Add a block's ``[Σ M, #(M < 0.5), Σ V̂]`` over ``numel`` statistics to the step's metrics."""
        self._stat_sums.append(sums)
        self._numel += numel

    def metrics(self) -> dict[str, float]:
        """``mask_mean``, ``mask_below_half`` and ``vhat_mean`` of this step (one host sync)."""
        sums = torch.stack(self._stat_sums).sum(0).tolist() if self._stat_sums else [0.0, 0.0, 0.0]
        numel = max(self._numel, 1)
        return {
            "mask_mean": sums[0] / numel,
            "mask_below_half": sums[1] / numel,
            "vhat_mean": sums[2] / numel,
        }

    def _record_mask(self, mask: Tensor, vhat_sum: Tensor) -> None:
        self.record(torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat_sum]), mask.numel())

    # ------------------------------------------------------------ which gradients feed the statistics
    def split(self, domain_grads: Tensor) -> tuple[Tensor, Tensor]:
        """``(update, statistics)`` per-domain gradients: the same tensor, or, under ``stat_tokens="logic"``, the
        first and the last K of the 2K captured domains (the relabelled copy of the rows is domains K..2K−1)."""
        if self.config.stat_tokens == "all":
            return domain_grads, domain_grads
        if self.num_domains is None:
            raise ValueError(
                "IGA stat_tokens='logic': set IGAOptimizer.num_domains = K (the number of training domains) so that "
                "the 2K captured domains can be told apart"
            )
        k = self.num_domains
        if domain_grads.shape[0] != 2 * k:
            raise ValueError(
                f"IGA stat_tokens='logic' expects 2K = {2 * k} captured domains (the rows again, with logic-only "
                f"labels, as domains K..2K-1: see IGAConfig.stat_tokens), got {domain_grads.shape[0]}; this trainer "
                "may not support stat_tokens='logic' (`iga train` does)"
            )
        return domain_grads[:k], domain_grads[k:]

    def _averaged_domain_grads(self, key: str, domain_grads: Tensor) -> Tensor:
        """The bias-corrected EMA of the per-domain gradients (``domain_ema_beta``), staged until :meth:`commit`."""
        beta = self.config.domain_ema_beta
        grads = domain_grads.to(torch.promote_types(domain_grads.dtype, torch.float32))
        old = self._domain_ema.get(key)
        new = grads * (1 - beta) if old is None else old * beta + grads * (1 - beta)
        self._pending_domain_ema[key] = new
        return new / (1 - beta ** (self._domain_ema_steps + 1))

    def _smoothed(self, key: str, var: Tensor, mean_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(V, Ḡ²)`` replaced by their bias-corrected EMAs (``ema_beta``), staged until :meth:`commit`."""
        beta = self.config.ema_beta
        old = self._ema.get(key)
        new_var = var * (1 - beta) if old is None else old[0] * beta + var * (1 - beta)
        new_sq = mean_sq * (1 - beta) if old is None else old[1] * beta + mean_sq * (1 - beta)
        self._pending_ema[key] = (new_var, new_sq)
        correction = 1 - beta ** (self._ema_steps + 1)
        return new_var / correction, new_sq / correction

    # ------------------------------------------------------------ the masks
    def masked_mean(self, key: str, domain_grads: Tensor, tau: float) -> Tensor | None:
        """``G̃ = M ⊙ Ḡ`` of one gradient's ``(K, ...)`` per-domain values (coordinate, row, column or layer
        statistics; variance or sign); ``None`` when anything is non-finite."""
        cfg = self.config
        update, source = self.split(domain_grads)
        stat_grads = self._averaged_domain_grads(key, source) if cfg.domain_ema_beta > 0 else source
        # Statistics (and so the mask) from the averaged G_k under domain_ema_beta, from the logic tokens' G_k under
        # stat_tokens="logic"; the masked direction is always this step's mean of the training loss.
        stat_mean, var = domain_statistics(stat_grads)
        mean = update.to(stat_mean.dtype).mean(0) if stat_grads is not update else stat_mean
        dims = grouped_dims(cfg.mask_space, mean.dim())
        if cfg.mask_stat == "sign":
            vhat = sign_disagreement(stat_grads)
            vhat = vhat.mean(dims, keepdim=True) if dims else vhat
        else:
            mean_sq = stat_mean.square()
            if cfg.ema_beta > 0:
                var, mean_sq = self._smoothed(key, var, mean_sq)
            if dims:
                # One statistic per row / column / layer: V and Ḡ² averaged over the coordinates sharing it.
                var, mean_sq = var.mean(dims, keepdim=True), mean_sq.mean(dims, keepdim=True)
            # In place from here on (var, mean_sq are this call's own buffers): V̂, then M, then G̃ = M ⊙ Ḡ.
            vhat = normalised_variance(var, mean_sq, cfg.variance_norm, cfg.eps, inplace=True)
        if vhat.shape != mean.shape:
            vhat = vhat.expand_as(mean).clone()
        vhat_sum = vhat.sum()
        mask = vhat.mul_(-tau).exp_()
        self._record_mask(mask, vhat_sum)
        if self.keep_masks:
            self.masks[key] = mask.clone()
        masked = mask.mul_(mean)
        if cfg.rescale:
            masked.mul_(mean.norm() / masked.norm().clamp(min=cfg.eps))
        # One host sync per layer, needed anyway before an SVD (LAPACK fails on NaN); a NaN or inf anywhere
        # makes the sum non-finite.
        return masked if bool(torch.isfinite(masked.sum())) else None

    def subspace_masked(
        self, key: str, domain_grads: Tensor, rank: int, tau: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor] | None:
        """``mask_space="subspace"``: the mask on each domain's coefficients along ``Ḡ``'s top-``rank`` singular
        directions. Returns ``(Σ_i M_i s_i u_i v_iᵀ, the share of ‖Ḡ‖² the directions carry)``, or ``None`` when
        ``Ḡ`` is non-finite."""
        cfg = self.config
        update, source = self.split(domain_grads)
        g = update.to(torch.promote_types(update.dtype, torch.float32))
        mean = g.mean(0)
        if not bool(torch.isfinite(mean.sum())):
            return None
        u, s, vh = truncated_svd(
            mean, min(rank, *mean.shape), exact_max_numel=cfg.svd_exact_max_numel, generator=generator
        )
        # Each domain's component along direction i (their mean over k is s_i, unless the statistics come from
        # the logic tokens' G_k).
        mask, vhat = direction_mask(
            source, u, vh, tau=tau, mask_stat=cfg.mask_stat, variance_norm=cfg.variance_norm, eps=cfg.eps
        )
        self._record_mask(mask, vhat.sum())
        if self.keep_masks:
            self.masks[key] = (u, mask, vh)
        energy = s.square().sum() / mean.square().sum().clamp(min=torch.finfo(mean.dtype).tiny)
        return (u * (mask * s)) @ vh, energy

    def stack_masked_mean(self, names: list[str], stack: Tensor, tau: float) -> Tensor:
        """``G̃`` of an ``(L, K, m, n)`` stack of same-shape layers, as :meth:`masked_mean` per layer (coordinate
        space, all tokens; the sign statistic without ``domain_ema_beta``) in batched kernels."""
        cfg = self.config
        if cfg.mask_stat == "sign":  # no EMA of V (stackable() says when this is called)
            masked, _, sums = stacked_sign_masked_mean(stack, tau=tau, eps=cfg.eps, rescale=cfg.rescale)
        elif cfg.variance_norm == "relative" and cfg.ema_beta == 0 and cfg.domain_ema_beta == 0:
            # The default options: the same numbers in fewer passes over memory.
            masked, _, sums = stacked_relative_masked_mean(stack, tau=tau, eps=cfg.eps, rescale=cfg.rescale)
        else:
            if cfg.domain_ema_beta > 0:
                averaged = [self._averaged_domain_grads(n, g) for n, g in zip(names, stack, strict=True)]
                stat_mean, var = stacked_statistics(torch.stack(averaged))
                mean = stack.to(stat_mean.dtype).mean(1)
                mean_sq = stat_mean.square()
            else:
                mean, var = stacked_statistics(stack)
                mean_sq = mean.square()
            if cfg.ema_beta > 0:
                smoothed = [self._smoothed(n, v, s) for n, v, s in zip(names, var, mean_sq, strict=True)]
                var = torch.stack([v for v, _ in smoothed])
                mean_sq = torch.stack([s for _, s in smoothed])
            masked, sums = stacked_mask(
                mean, var, mean_sq, tau=tau, variance_norm=cfg.variance_norm, eps=cfg.eps, rescale=cfg.rescale
            )
        self.record(sums, masked.numel())
        return masked

    def flat_masked_mean(self, keys: list[str], sizes: list[int], flat: Tensor, tau: float) -> Tensor | None:
        """``mask_space="factor"``: ``M ⊙ Ḡ`` of ``(K, Σ sizes)`` per-domain gradients laid side by side (the
        segments named by ``keys``); ``None`` when anything is non-finite."""
        cfg = self.config
        flat, source = self.split(flat)
        if cfg.domain_ema_beta > 0:
            old = torch.cat(
                [
                    self._domain_ema[key]
                    if key in self._domain_ema
                    else source.new_zeros(source.shape[0], size)
                    for key, size in zip(keys, sizes, strict=True)
                ],
                dim=1,
            )
            beta = cfg.domain_ema_beta
            new = old * beta + source * (1 - beta)  # a missing state is 0: the first step's (1 − β)·G_k
            self._pending_domain_ema.update(zip(keys, new.split(sizes, dim=1), strict=True))
            stat_flat = new / (1 - beta ** (self._domain_ema_steps + 1))
        else:
            stat_flat = source
        if stat_flat is flat:
            mean, var = flat_statistics(flat)
            mean_sq = mean.square()
        else:
            stat_mean, var = flat_statistics(stat_flat)
            mean = flat.sum(0).div_(flat.shape[0])
            mean_sq = stat_mean.square()
        if cfg.ema_beta > 0:
            zeros = [flat.new_zeros(size) for size in sizes]
            old_var = torch.cat(
                [self._ema[k][0] if k in self._ema else z for k, z in zip(keys, zeros, strict=True)]
            )
            old_sq = torch.cat(
                [self._ema[k][1] if k in self._ema else z for k, z in zip(keys, zeros, strict=True)]
            )
            beta = cfg.ema_beta
            new_var, new_sq = old_var * beta + var * (1 - beta), old_sq * beta + mean_sq * (1 - beta)
            self._pending_ema.update(
                zip(keys, zip(new_var.split(sizes), new_sq.split(sizes), strict=True), strict=True)
            )
            correction = 1 - beta ** (self._ema_steps + 1)
            var, mean_sq = new_var / correction, new_sq / correction
        masked, sums = flat_mask(
            mean,
            var,
            mean_sq,
            tau=tau,
            segments=sizes,
            variance_norm=cfg.variance_norm,
            eps=cfg.eps,
            rescale=cfg.rescale,
            vhat=sign_disagreement(stat_flat) if cfg.mask_stat == "sign" else None,
        )
        self.record(sums, masked.numel())
        return masked if bool(torch.isfinite(masked.sum())) else None

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The running averages and their step counters (resume is exact)."""
        return {
            "ema_steps": self._ema_steps,
            "ema": {k: {"var": v.clone(), "mean_sq": s.clone()} for k, (v, s) in self._ema.items()},
            "domain_ema_steps": self._domain_ema_steps,
            "domain_ema": {k: v.clone() for k, v in self._domain_ema.items()},
        }

    def load_state_dict(self, state: dict[str, Any], devices: dict[str, torch.device], what: str) -> None:
        """Restore :meth:`state_dict`'s entries onto ``devices[key]``; a key not in ``devices`` (not a ``what``)
        is an error."""
        self._ema_steps = int(state["ema_steps"])
        self._ema = {}
        for key, value in state["ema"].items():
            device = devices.get(key)
            if device is None:
                raise ValueError(f"state_dict has EMA statistics for {key!r}, which is not a {what}")
            self._ema[key] = (value["var"].to(device), value["mean_sq"].to(device))
        # Absent in checkpoints written before domain_ema_beta existed: no running average yet.
        self._domain_ema_steps = int(state.get("domain_ema_steps", 0))
        self._domain_ema = {}
        for key, value in state.get("domain_ema", {}).items():
            device = devices.get(key)
            if device is None:
                raise ValueError(f"state_dict has domain EMA gradients for {key!r}, which is not a {what}")
            self._domain_ema[key] = value.to(device)
        self.clear()
