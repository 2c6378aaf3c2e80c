"""Invariant Gradient Alignment (docs/method.md §1): mask conflicting coordinates of each layer's mean gradient, project
onto rank r, map back to the LoRA factors, then let the base optimizer step.

Data flow per step (``mask_space="coordinate"``, the default): ``DomainGradCapture(space="full")`` hands each
layer's (K, m, n) per-domain gradients to :class:`IGAOptimizer` inside the backward. Layers of the same shape and
rank are collected into bounded stacks (:class:`~iga.gradients.grouping.LayerStacks`: at most
``layer_group_size`` layers and ``layer_group_max_bytes`` bytes open at once, written straight into by the
capture); for every full stack the optimizer computes ``Ḡ, V, V̂, M, G̃ = M ⊙ Ḡ``, the projection and the factor
gradients as batched kernels (:mod:`iga.gradients.stacked`) and keeps only the factor gradients (r(m+n) numbers per
layer). Stacks still open when the backward ends are processed at the start of ``step()``. A layer that is not
stacked (a plain Linear, a block larger than half the byte bound, ``layer_group_size=1``) is processed alone inside
its hook, as before. ``step()`` writes the factor gradients into ``.grad`` (autograd is still accumulating into A
and B while the hooks run, so ``.grad`` is never touched there), clips, and steps the base optimizer.

With ``mask_space="factor"`` the capture is ``DomainGradCapture(space="factor")``: ``step()`` masks the per-domain
gradients of the LoRA factors themselves (all of them laid side by side, one set of elementwise kernels) and writes
``M ⊙ mean_k ∂L_k/∂θ`` into every captured factor's ``.grad``: no full-weight GEMM, no SVD.

Data parallelism (DDP): with ``stats_scope="global"`` the capture averages each layer's per-domain sums over the
ranks inside the backward (before the statistics); with ``"local"`` every rank masks and projects its own sums.
In both scopes ``step()`` then averages the written gradients of every trainable parameter over the ranks (one
LoRA-sized all-reduce, which also keeps the ranks bitwise in sync), so the backward may run under DDP's
``no_sync()``: DDP's own all-reduce of ``.grad`` would be overwritten anyway.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm, make_base_optimizer
from iga.algorithms.iga_config import IGAConfig
from iga.algorithms.lora_map import map_products, project_products
from iga.algorithms.mask import (
    direction_mask,
    domain_statistics,
    grouped_dims,
    normalised_variance,
    sign_disagreement,
)
from iga.algorithms.optimizer_wrapper import OptimizerWrapper
from iga.algorithms.projection import truncated_svd
from iga.algorithms.registry import register_algorithm
from iga.distributed import all_reduce_mean
from iga.gradients.capture import CapturedLayer, DomainGradCapture
from iga.gradients.grouping import LayerStacks
from iga.gradients.stacked import (
    flat_mask,
    flat_statistics,
    stacked_mask,
    stacked_project_products,
    stacked_relative_masked_mean,
    stacked_statistics,
)


def _capture_space(config: IGAConfig) -> str:
    return "factor" if config.mask_space == "factor" else "full"


class IGAOptimizer(OptimizerWrapper):
    """Wraps a base optimizer (AdamW by default) and rewrites the LoRA gradients with IGA before each step.

    It is a ``torch.optim.Optimizer`` whose ``param_groups``, ``state`` and ``defaults`` are the base optimizer's
    (:class:`~iga.algorithms.optimizer_wrapper.OptimizerWrapper`), so LR schedulers, the HF Trainer and Accelerate
    drive it as usual.

    Parameters that are not LoRA factors of a captured layer (norms, embeddings, LoRA biases) keep their autograd
    gradient, which is already the mean gradient of ``L = (1/K) Σ_k L_k``, i.e. plain ERM. Plain trainable
    ``nn.Linear`` layers get the masked mean ``G̃`` directly (weight and trainable bias), without projection.
    With ``mask_space="factor"`` the capture must be ``DomainGradCapture(model, space="factor")``; every captured
    parameter (LoRA factors, trainable LoRA biases, plain Linear weights and biases) then gets ``M ⊙ Ḡ`` of its
    own per-domain gradients.

    Non-finite statistics in any layer skip the whole step (no base step, gradients zeroed), warn once and are
    counted in ``last_metrics["skipped_steps"]``.

    Example:
        >>> import torch
        >>> from iga.gradients import DomainGradCapture
        >>> net = torch.nn.Linear(2, 1)
        >>> cap = DomainGradCapture(net)
        >>> opt = IGAOptimizer(torch.optim.SGD(net.parameters(), lr=0.1), cap, IGAConfig(tau=5.0))
        >>> x, y, dom = torch.randn(4, 2), torch.randn(4, 1), torch.tensor([0, 0, 1, 1])
        >>> with cap.domains(dom, num_domains=2):
        ...     ((net(x) - y) ** 2).view(2, 2).mean(1).mean().backward()
        >>> opt.step(); sorted(opt.last_metrics)[:3]
        ['grad_norm', 'mask_below_half', 'mask_mean']
    """

    state_key = "iga"

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        capture: DomainGradCapture,
        config: IGAConfig | None = None,
    ) -> None:
        config = config if config is not None else IGAConfig()
        space = _capture_space(config)
        if not isinstance(capture, DomainGradCapture) or capture.space != space:
            raise ValueError(
                f"IGAOptimizer with mask_space={config.mask_space!r} needs a DomainGradCapture(model, "
                f"space={space!r})"
            )
        super().__init__(base_optimizer, capture, "IGAOptimizer")
        self.config = config
        self._space = space
        self._layer_index = {id(layer): i for i, layer in enumerate(capture.layers)}
        self._stackable = [layer for layer in capture.layers if layer.is_lora]
        self._factor_params = capture.factor_parameters() if space == "factor" else []
        self._ema_steps = 0
        self._ema: dict[str, tuple[Tensor, Tensor]] = {}
        self._domain_ema_steps = 0
        self._domain_ema: dict[str, Tensor] = {}
        #: Set to True to keep each step's masks in :attr:`last_masks` (diagnostics: one gradient-sized tensor per
        #: layer; the default statistics then run one layer at a time, not stacked).
        self.keep_masks = False
        #: K, the number of training domains: needed under ``stat_tokens="logic"`` (2K domains are captured);
        #: the registered algorithm sets it.
        self.num_domains: int | None = None
        #: ``{layer name: M}`` of the last step when :attr:`keep_masks` (per coordinate, row, column and layer
        #: masks expanded to the weight's shape; ``(U_r, M, Vh_r)`` for ``mask_space="subspace"``).
        self.last_masks: dict[str, Any] = {}
        self._clear_pending()
        if space == "full":
            capture.set_consumer(self._consume, buffer=self._slot)
            capture.set_reducer(self._reduce_domain_sums)

    # ------------------------------------------------------------ per-layer work (inside the backward)
    def _clear_pending(self) -> None:
        self._pending: dict[nn.Parameter, Tensor] = {}
        self._pending_ema: dict[str, tuple[Tensor, Tensor]] = {}
        self._pending_domain_ema: dict[str, Tensor] = {}
        self._energy: dict[str, Tensor] = {}
        self._stat_sums: list[Tensor] = []
        self._numel = 0
        self._nonfinite: list[str] = []
        self._masks: dict[str, Any] = {}
        # Read at every step, so that a config swapped between steps takes effect; the stacks' buffers are reused
        # from step to step while the bounds stay the same.
        bounds = (self.config.layer_group_size, self.config.layer_group_max_bytes)
        if getattr(self, "_stack_bounds", None) != bounds:
            self._stack_bounds = bounds
            self._stacks = LayerStacks(
                self._stackable, self._process_stack, group_size=bounds[0], max_bytes=bounds[1]
            )
        self._stacks.clear()

    def _check_space(self) -> None:
        if _capture_space(self.config) != self._space:
            raise ValueError(
                f"IGAOptimizer: config.mask_space={self.config.mask_space!r} does not fit this optimizer's "
                f"DomainGradCapture(space={self._space!r}); build a new optimizer to change the mask space"
            )

    def _averaged_domain_grads(self, key: str, domain_grads: Tensor) -> Tensor:
        """The bias-corrected EMA of the per-domain gradients (``domain_ema_beta``), staged until ``step()``."""
        beta = self.config.domain_ema_beta
        grads = domain_grads.to(torch.promote_types(domain_grads.dtype, torch.float32))
        old = self._domain_ema.get(key)
        new = grads * (1 - beta) if old is None else old * beta + grads * (1 - beta)
        # Staged like the statistics EMA: a skipped step must not enter the running average.
        self._pending_domain_ema[key] = new
        return new / (1 - beta ** (self._domain_ema_steps + 1))

    def _smoothed(self, key: str, var: Tensor, mean_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(V, Ḡ²)`` replaced by their bias-corrected EMAs (``ema_beta``), the new EMAs staged until ``step()``."""
        beta = self.config.ema_beta
        old = self._ema.get(key)
        new_var = var * (1 - beta) if old is None else old[0] * beta + var * (1 - beta)
        new_sq = mean_sq * (1 - beta) if old is None else old[1] * beta + mean_sq * (1 - beta)
        # Staged until step(): a skipped step must not enter the running statistics.
        self._pending_ema[key] = (new_var, new_sq)
        correction = 1 - beta ** (self._ema_steps + 1)
        return new_var / correction, new_sq / correction

    def _split(self, domain_grads: Tensor) -> tuple[Tensor, Tensor]:
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

    def _masked_mean(self, key: str, domain_grads: Tensor, tau: float) -> Tensor | None:
        cfg = self.config
        update, source = self._split(domain_grads)
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
        self._stat_sums.append(torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat_sum]))
        self._numel += mask.numel()
        if self.keep_masks:
            self._masks[key] = mask.clone()
        masked = mask.mul_(mean)
        if cfg.rescale:
            masked.mul_(mean.norm() / masked.norm().clamp(min=cfg.eps))
        # One host sync per layer, needed anyway before an SVD (LAPACK fails on NaN); a NaN or inf anywhere
        # makes the sum non-finite.
        return masked if bool(torch.isfinite(masked.sum())) else None

    def _resolve_rank(self, layer: CapturedLayer) -> int | None:
        rank = self.config.svd_rank
        return layer.rank if rank == "lora" else rank  # type: ignore[return-value]

    def _generator(self, layer: CapturedLayer, device: torch.device) -> torch.Generator:
        seed = (self.config.svd_seed * 1_000_003 + self._step) * 65_537 + self._layer_index[id(layer)]
        return torch.Generator(device=device).manual_seed(seed % (2**63))

    def _reduce_domain_sums(self, sums: list[Tensor]) -> None:
        # Read at call time, so that a config swapped between steps takes effect; a no-op in one process.
        if self.config.stats_scope == "global":
            all_reduce_mean(sums)

    def _slot(
        self, layer: CapturedLayer, shape: tuple[int, int, int], dtype: torch.dtype, device: torch.device
    ) -> Tensor | None:
        # Where the capture writes a stacked layer's sums (no copy); None: a fresh tensor, processed alone.
        return self._stacks.slot(layer, shape, dtype, device)

    def _subspace_masked(self, layer: CapturedLayer, domain_grads: Tensor, tau: float) -> Tensor | None:
        """``mask_space="subspace"``: the mask on each domain's coefficients along ``Ḡ``'s top-r singular
        directions; returns ``Σ_i M_i s_i u_i v_iᵀ`` (rank ≤ r)."""
        cfg = self.config
        update, source = self._split(domain_grads)
        g = update.to(torch.promote_types(update.dtype, torch.float32))
        mean = g.mean(0)
        if not bool(torch.isfinite(mean.sum())):
            return None
        # A LoRA layer's rank or svd_rank; _consume sends a plain Linear here only with an int svd_rank.
        rank = min(self._resolve_rank(layer), *mean.shape)  # type: ignore[type-var]
        u, s, vh = truncated_svd(
            mean, rank, exact_max_numel=cfg.svd_exact_max_numel, generator=self._generator(layer, mean.device)
        )
        # Each domain's component along direction i (their mean over k is s_i, unless the statistics come from
        # the logic tokens' G_k).
        mask, vhat = direction_mask(
            source, u, vh, tau=tau, mask_stat=cfg.mask_stat, variance_norm=cfg.variance_norm, eps=cfg.eps
        )
        self._stat_sums.append(torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat.sum()]))
        self._numel += mask.numel()
        total = mean.square().sum().clamp(min=torch.finfo(mean.dtype).tiny)
        self._energy[layer.name] = s.square().sum() / total  # the share of Ḡ the r directions carry
        if self.keep_masks:
            self._masks[layer.name] = (u, mask, vh)
        return (u * (mask * s)) @ vh

    @torch.no_grad()
    def _consume(self, layer: CapturedLayer, domain_grads: Tensor) -> None:
        cfg = self.config
        stackable = (
            cfg.mask_space == "coordinate"
            and cfg.mask_stat == "variance"
            and cfg.stat_tokens == "all"
            and not self.keep_masks
        )
        if stackable and layer.bias_domain_grads is None and self._stacks.add(layer, domain_grads):
            return  # processed with its stack (when full, evicted, or at step())
        tau = cfg.tau_at(self._step)
        subspace = cfg.mask_space == "subspace" and (layer.is_lora or isinstance(cfg.svd_rank, int))
        if subspace:
            masked = self._subspace_masked(layer, domain_grads, tau)
        else:
            masked = self._masked_mean(layer.name, domain_grads, tau)
        bias_masked = None
        if layer.bias_domain_grads is not None:
            bias_masked = self._masked_mean(f"{layer.name}.bias", layer.bias_domain_grads, tau)
            if bias_masked is None:
                masked = None
        if masked is None:
            self._nonfinite.append(layer.name)
            return
        if not layer.is_lora:
            assert layer.weight is not None
            self._pending[layer.weight] = masked.to(layer.weight.dtype)
            if layer.bias is not None and bias_masked is not None:
                self._pending[layer.bias] = bias_masked.to(layer.bias.dtype)
            return
        assert layer.lora_A is not None and layer.lora_B is not None
        a, b = layer.lora_A.to(masked.dtype), layer.lora_B.to(masked.dtype)
        rank = None if subspace else self._resolve_rank(layer)  # a subspace step is rank r already
        g_at, bt_g, energy = project_products(
            masked,
            a,
            b,
            rank,
            svd_exact_max_numel=self.config.svd_exact_max_numel,
            generator=self._generator(layer, masked.device),
        )
        if rank is not None and rank < min(layer.shape):
            self._energy[layer.name] = energy
        grad_a, grad_b = map_products(
            g_at, bt_g, a, b, layer.scaling, self.config.lora_map, self.config.damping
        )
        self._pending[layer.lora_A] = grad_a.to(layer.lora_A.dtype)
        self._pending[layer.lora_B] = grad_b.to(layer.lora_B.dtype)

    def _stack_masked_mean(self, names: list[str], stack: Tensor, tau: float) -> tuple[Tensor, Tensor]:
        """``(G̃, metric sums)`` of a stack, as :meth:`_masked_mean` per layer."""
        cfg = self.config
        if cfg.variance_norm == "relative" and cfg.ema_beta == 0 and cfg.domain_ema_beta == 0:
            # The default options: the same numbers in fewer passes over memory.
            masked, _, sums = stacked_relative_masked_mean(stack, tau=tau, eps=cfg.eps, rescale=cfg.rescale)
            return masked, sums
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
        return stacked_mask(
            mean, var, mean_sq, tau=tau, variance_norm=cfg.variance_norm, eps=cfg.eps, rescale=cfg.rescale
        )

    @torch.no_grad()
    def _process_stack(self, layers: list[CapturedLayer], stack: Tensor) -> None:
        """The per-layer work of :meth:`_consume` for ``len(layers)`` LoRA layers of one shape and rank at once,
        on their ``(L, K, m, n)`` sums: the same numbers, batched kernels (:mod:`iga.gradients.stacked`)."""
        cfg = self.config
        tau = cfg.tau_at(self._step)
        names = [layer.name for layer in layers]
        masked, sums = self._stack_masked_mean(names, stack, tau)
        self._stat_sums.append(sums)
        self._numel += masked.numel()
        # One host sync per stack (LAPACK fails on NaN): a NaN or inf anywhere makes a layer's sum non-finite.
        per_layer = masked.sum(dim=(1, 2))
        if not bool(torch.isfinite(per_layer.sum())):
            finite = torch.isfinite(per_layer).tolist()
            self._nonfinite.extend(n for n, ok in zip(names, finite, strict=True) if not ok)
            if all(finite):  # the layers' sums are finite, their total is not: name them all
                self._nonfinite.extend(names)
            return
        dtype, device = masked.dtype, masked.device
        a = torch.stack([layer.lora_A.to(dtype) for layer in layers])  # type: ignore[union-attr]
        b = torch.stack([layer.lora_B.to(dtype) for layer in layers])  # type: ignore[union-attr]
        rank = self._resolve_rank(layers[0])  # stacks share the LoRA rank
        m, n = layers[0].shape
        projected = rank is not None and rank < min(m, n)
        randomized = projected and m * n > cfg.svd_exact_max_numel
        generators = [self._generator(layer, device) if randomized else None for layer in layers]
        g_at, bt_g, energy = stacked_project_products(
            masked, a, b, rank, exact_max_numel=cfg.svd_exact_max_numel, generators=generators
        )
        if projected:
            self._energy.update(zip(names, energy, strict=True))
        if cfg.lora_map == "chain":
            scaling = torch.tensor([layer.scaling for layer in layers], dtype=dtype, device=device)
            grads_a, grads_b = bt_g * scaling[:, None, None], g_at * scaling[:, None, None]
        else:
            mapped = [
                map_products(g_at[i], bt_g[i], a[i], b[i], layer.scaling, cfg.lora_map, cfg.damping)
                for i, layer in enumerate(layers)
            ]
            grads_a, grads_b = [ga for ga, _ in mapped], [gb for _, gb in mapped]
        for layer, grad_a, grad_b in zip(layers, grads_a, grads_b, strict=True):
            assert layer.lora_A is not None and layer.lora_B is not None
            self._pending[layer.lora_A] = grad_a.to(layer.lora_A.dtype)
            self._pending[layer.lora_B] = grad_b.to(layer.lora_B.dtype)

    # ------------------------------------------------------------ factor space (at step())
    @torch.no_grad()
    def _mask_factors(self, tau: float) -> None:
        """``mask_space="factor"``: ``M ⊙ Ḡ`` of every captured parameter from its per-domain gradients, all
        parameters of one device laid side by side so that one set of elementwise kernels masks them."""
        cfg = self.config
        captured = self.capture.factor_grads()
        entries = [(key, p, captured[p]) for key, p in self._factor_params if p in captured]
        by_device: dict[torch.device, list[tuple[str, nn.Parameter, Tensor]]] = {}
        for entry in entries:
            by_device.setdefault(entry[2].device, []).append(entry)
        for group in by_device.values():
            k_dom = group[0][2].shape[0]
            dtype = torch.promote_types(group[0][2].dtype, torch.float32)
            for _, _, g in group[1:]:
                dtype = torch.promote_types(dtype, g.dtype)
            flat = torch.cat([g.reshape(k_dom, -1).to(dtype) for _, _, g in group], dim=1)
            if cfg.stats_scope == "global":
                all_reduce_mean([flat])  # one process on the global batch, before any statistic
            keys = [key for key, _, _ in group]
            sizes = [g[0].numel() for _, _, g in group]
            masked = self._masked_flat(keys, sizes, flat, tau)
            if masked is None:
                self._nonfinite.extend(keys)
                continue
            for (_, param, _), part in zip(group, masked.split(sizes), strict=True):
                self._pending[param] = part.view(param.shape).to(param.dtype)

    def _masked_flat(self, keys: list[str], sizes: list[int], flat: Tensor, tau: float) -> Tensor | None:
        cfg = self.config
        flat, source = self._split(flat)
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
        self._stat_sums.append(sums)
        self._numel += masked.numel()
        return masked if bool(torch.isfinite(masked.sum())) else None

    # ------------------------------------------------------------ step
    def _nonfinite_warning(self) -> str:
        where = (
            f"in {self._nonfinite[:3]} ({len(self._nonfinite)} layer(s))"
            if self._nonfinite
            else "on another rank"
        )
        return (
            f"IGA: non-finite gradient statistics {where}; skipping this optimizer step (counted in "
            "last_metrics['skipped_steps'], warned once)"
        )

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Write the IGA factor gradients into ``.grad``, average them over ranks, clip, step the base optimizer."""
        self._refuse_closure(
            closure, "IGAOptimizer.step does not take a closure (closure-based optimizers are not supported)"
        )
        self._check_space()
        tau = self.config.tau_at(self._step)
        try:
            if self._space == "factor":
                self._mask_factors(tau)
            else:
                self._stacks.flush()  # the stacks still open when the backward ended
            if not self._nonfinite and not self._pending:
                raise RuntimeError(
                    "IGAOptimizer.step(): no per-domain gradients were captured since the last step. Run forward "
                    "AND backward inside `with capture.domains(domain_ids, num_domains=K, sync=True):` "
                    "(sync=True on the last micro-batch of an accumulation step)"
                )
        except BaseException:
            self._clear_pending()
            if self._space == "factor":
                self.capture.reset()
            raise
        try:
            if self._all_skip(bool(self._nonfinite)):
                self._skip_step(self._nonfinite_warning(), tau=tau)
                return
            if self.config.stat_tokens == "logic":
                self._check_all_captured()
            self._write_grads(self._pending)
            self._ema.update(self._pending_ema)
            if self._pending_ema:
                self._ema_steps += 1
            self._domain_ema.update(self._pending_domain_ema)
            if self._pending_domain_ema:
                self._domain_ema_steps += 1
            metrics = self._metrics(tau)
            metrics["grad_norm"] = self._clip(self.config.max_grad_norm)
            self.base_optimizer.step()
            self.last_metrics = metrics
            self.last_masks = self._masks
        finally:
            self._step += 1
            self._clear_pending()
            if self._space == "factor":
                self.capture.reset()

    def _check_all_captured(self) -> None:
        # The backward was of the mean of both losses (training and logic tokens): only the parameters IGA writes
        # get the training loss's gradient back.
        stray = [
            p for g in self.param_groups for p in g["params"] if p.grad is not None and p not in self._pending
        ]
        if stray:
            raise ValueError(
                f"IGA stat_tokens='logic': {len(stray)} trainable parameter(s) outside the captured layers would be "
                "updated with the gradient of both losses (training and logic tokens); freeze them or use "
                "stat_tokens='all'"
            )

    def _metrics(self, tau: float) -> dict[str, float]:
        sums = torch.stack(self._stat_sums).sum(0).tolist() if self._stat_sums else [0.0, 0.0, 0.0]
        numel = max(self._numel, 1)
        metrics = {
            "mask_mean": sums[0] / numel,
            "mask_below_half": sums[1] / numel,
            "vhat_mean": sums[2] / numel,
            "tau": tau,
            "skipped_steps": float(self._skipped),
        }
        if self._energy:
            names = list(self._energy)
            values = torch.stack([self._energy[n].float() for n in names]).tolist()
            metrics["energy_kept_mean"] = sum(values) / len(values)
            metrics.update({f"energy_kept/{n}": v for n, v in zip(names, values, strict=True)})
        return metrics

    def _drop_captured(self) -> None:
        """Drop the IGA gradients computed since the last step (and, in factor space, the captured ones)."""
        self._clear_pending()
        if self._space == "factor":
            self.capture.reset()

    # ------------------------------------------------------------ checkpointing
    def _state_devices(self) -> dict[str, torch.device]:
        """The keys the EMA state may have (per layer, or per captured parameter in factor space)."""
        if self._space == "factor":
            return {key: p.device for key, p in self._factor_params}
        out = {}
        for layer in self.capture.layers:
            device = layer.parameters()[0].device
            out[layer.name] = out[f"{layer.name}.bias"] = device
        return out

    def _wrapper_state(self) -> dict[str, Any]:
        """The IGA step counters and EMA buffers (resume is exact)."""
        return {
            "step": self._step,
            "skipped_steps": self._skipped,
            "ema_steps": self._ema_steps,
            "ema": {k: {"var": v.clone(), "mean_sq": s.clone()} for k, (v, s) in self._ema.items()},
            "domain_ema_steps": self._domain_ema_steps,
            "domain_ema": {k: v.clone() for k, v in self._domain_ema.items()},
            "config": asdict(self.config),
        }

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "iga"}:
            raise ValueError(
                f"not an IGAOptimizer state_dict (keys {sorted(state_dict)}; expected 'base', 'iga')"
            )

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        iga = state
        devices = self._state_devices()
        what = "captured parameter" if self._space == "factor" else "captured layer"
        self._step, self._skipped, self._ema_steps = (
            int(iga["step"]),
            int(iga["skipped_steps"]),
            int(iga["ema_steps"]),
        )
        self._ema = {}
        for key, value in iga["ema"].items():
            device = devices.get(key)
            if device is None:
                raise ValueError(f"state_dict has EMA statistics for {key!r}, which is not a {what}")
            self._ema[key] = (value["var"].to(device), value["mean_sq"].to(device))
        # Absent in checkpoints written before domain_ema_beta existed: no running average yet.
        self._domain_ema_steps = int(iga.get("domain_ema_steps", 0))
        self._domain_ema = {}
        for key, value in iga.get("domain_ema", {}).items():
            device = devices.get(key)
            if device is None:
                raise ValueError(f"state_dict has domain EMA gradients for {key!r}, which is not a {what}")
            self._domain_ema[key] = value.to(device)
        self._clear_pending()


def create_iga_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    base: str | type[torch.optim.Optimizer] = "adamw",
    tau: float = IGAConfig.tau,
    tau_warmup_steps: int = IGAConfig.tau_warmup_steps,
    variance_norm: str = IGAConfig.variance_norm,
    ema_beta: float = IGAConfig.ema_beta,
    domain_ema_beta: float = IGAConfig.domain_ema_beta,
    rescale: bool = IGAConfig.rescale,
    svd_rank: int | str | None = IGAConfig.svd_rank,
    svd_exact_max_numel: int = IGAConfig.svd_exact_max_numel,
    svd_seed: int = IGAConfig.svd_seed,
    lora_map: str = IGAConfig.lora_map,
    damping: float = IGAConfig.damping,
    eps: float = IGAConfig.eps,
    max_grad_norm: float | None = IGAConfig.max_grad_norm,
    stats_scope: str = IGAConfig.stats_scope,
    mask_space: str = IGAConfig.mask_space,
    mask_stat: str = IGAConfig.mask_stat,
    stat_tokens: str = IGAConfig.stat_tokens,
    layer_group_size: int = IGAConfig.layer_group_size,
    layer_group_max_bytes: int = IGAConfig.layer_group_max_bytes,
    capture: DomainGradCapture | None = None,
) -> IGAOptimizer:
    """Build ``IGAOptimizer(base(trainable params), DomainGradCapture(model, space=...), IGAConfig(...))``.

    Keyword-only, like PEFT's ``create_loraplus_optimizer``; the IGA options are those of :class:`IGAConfig`.
    The capture's space follows ``mask_space``: ``"factor"`` for ``"factor"``, ``"full"`` for every other space.
    Pass ``capture`` to reuse an existing capture of ``model`` in that space. Then, per step::

        with optimizer.capture.domains(batch["domain_ids"], num_domains=K):
            per_domain_token_loss(model(...).logits, labels, domain_ids, K).mean().backward()
        optimizer.step(); optimizer.zero_grad()

    Raises:
        ValueError: bad option values (naming the allowed ones), "no LoRA layers found in model", a capture of
            another model or space, or no trainable parameters.
    """
    config = IGAConfig(
        tau=tau,
        tau_warmup_steps=tau_warmup_steps,
        variance_norm=variance_norm,
        ema_beta=ema_beta,
        domain_ema_beta=domain_ema_beta,
        rescale=rescale,
        svd_rank=svd_rank,
        svd_exact_max_numel=svd_exact_max_numel,
        svd_seed=svd_seed,
        lora_map=lora_map,
        damping=damping,
        eps=eps,
        max_grad_norm=max_grad_norm,
        stats_scope=stats_scope,
        mask_space=mask_space,
        mask_stat=mask_stat,
        stat_tokens=stat_tokens,
        layer_group_size=layer_group_size,
        layer_group_max_bytes=layer_group_max_bytes,
    )
    space = _capture_space(config)
    if capture is None:
        capture = DomainGradCapture(model, space=space)
    elif capture.model is not model or capture.space != space:
        raise ValueError(
            f"capture must be a DomainGradCapture(model, space={space!r}) of this model (mask_space={mask_space!r})"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    base_optimizer = make_base_optimizer(params, base=base, lr=lr, weight_decay=weight_decay, betas=betas)
    return IGAOptimizer(base_optimizer, capture, config)


@register_algorithm("iga")
class IGA(Algorithm):
    """IGA as a registered algorithm: mean objective, full-space capture (factor-space with
    ``mask_space="factor"``), :class:`IGAOptimizer` around the base.

    Example:
        >>> IGA(num_domains=4, tau=5.0).hparams.tau
        5.0
        >>> IGA(num_domains=4, mask_space="factor").capture_space
        'factor'
    """

    capture_space = "full"
    clips_gradients = True
    hparams_cls = IGAConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Per instance: the trainer builds the capture of the instance's space and, under stat_tokens="logic",
        # appends the relabelled rows.
        self.capture_space = _capture_space(self.hparams)
        self.statistics_tokens = self.hparams.stat_tokens

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        optimizer = IGAOptimizer(base_optimizer, capture, self.hparams)
        optimizer.num_domains = self.num_domains
        return optimizer
