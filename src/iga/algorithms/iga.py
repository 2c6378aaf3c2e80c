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
and B while the hooks run, so ``.grad`` is never touched there), clips, and steps the base optimizer. The
statistics and masks of every space live in :class:`~iga.algorithms.iga_masker.ConflictMasker`; this module routes
gradients to it and the masked means onward.

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
from iga.algorithms.iga_masker import ConflictMasker
from iga.algorithms.lora_map import map_products, project_products
from iga.algorithms.optimizer_wrapper import OptimizerWrapper
from iga.algorithms.registry import register_algorithm
from iga.distributed import all_reduce_mean
from iga.gradients.capture import CapturedLayer, DomainGradCapture
from iga.gradients.grouping import LayerStacks
from iga.gradients.stacked import stacked_project_products


def _capture_space(config: IGAConfig) -> str:
    return "factor" if config.mask_space == "factor" else "full"


class IGAOptimizer(OptimizerWrapper):
    """Wraps a base optimizer (AdamW by default) and rewrites the LoRA gradients with IGA before each step.

    It is a ``torch.optim.Optimizer`` whose ``param_groups``, ``state`` and ``defaults`` are the base optimizer's
    (:class:`~iga.algorithms.optimizer_wrapper.OptimizerWrapper`), so LR schedulers, the HF Trainer and Accelerate
    drive it as usual. The statistics and the mask are its :class:`~iga.algorithms.iga_masker.ConflictMasker`'s;
    this class routes the captured gradients to it and the masked means onward (projection, LoRA map, ``.grad``).

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
        self.masker = ConflictMasker(config)
        self._space = space
        self._layer_index = {id(layer): i for i, layer in enumerate(capture.layers)}
        self._stackable = [layer for layer in capture.layers if layer.is_lora]
        self._factor_params = capture.factor_parameters() if space == "factor" else []
        #: ``{layer name: M}`` of the last step when :attr:`keep_masks` (per coordinate, row, column and layer
        #: masks expanded to the weight's shape; ``(U_r, M, Vh_r)`` for ``mask_space="subspace"``).
        self.last_masks: dict[str, Any] = {}
        self._clear_pending()
        if space == "full":
            capture.set_consumer(self._consume, buffer=self._slot)
            capture.set_reducer(self._reduce_domain_sums)

    @property
    def config(self) -> IGAConfig:
        """The IGA options; a config assigned between steps takes effect at the next step (same mask space)."""
        return self.masker.config

    @config.setter
    def config(self, value: IGAConfig) -> None:
        self.masker.config = value

    @property
    def keep_masks(self) -> bool:
        """Set to True to keep each step's masks in :attr:`last_masks` (diagnostics: one gradient-sized tensor per
        layer; the default statistics then run one layer at a time, not stacked)."""
        return self.masker.keep_masks

    @keep_masks.setter
    def keep_masks(self, value: bool) -> None:
        self.masker.keep_masks = value

    @property
    def num_domains(self) -> int | None:
        """K, the number of training domains: needed under ``stat_tokens="logic"`` (2K domains are captured);
        the registered algorithm sets it."""
        return self.masker.num_domains

    @num_domains.setter
    def num_domains(self, value: int | None) -> None:
        self.masker.num_domains = value

    # ------------------------------------------------------------ per-layer work (inside the backward)
    def _clear_pending(self) -> None:
        self._pending: dict[nn.Parameter, Tensor] = {}
        self._energy: dict[str, Tensor] = {}
        self._nonfinite: list[str] = []
        self.masker.clear()
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

    @torch.no_grad()
    def _consume(self, layer: CapturedLayer, domain_grads: Tensor) -> None:
        cfg = self.config
        stackable = (
            cfg.mask_space == "coordinate"
            and (cfg.mask_stat == "variance" or cfg.domain_ema_beta == 0)
            and cfg.stat_tokens == "all"
            and not self.keep_masks
        )
        if stackable and layer.bias_domain_grads is None and self._stacks.add(layer, domain_grads):
            return  # processed with its stack (when full, evicted, or at step())
        tau = cfg.tau_at(self._step)
        subspace = cfg.mask_space == "subspace" and (layer.is_lora or isinstance(cfg.svd_rank, int))
        if subspace:
            # A LoRA layer's rank or svd_rank (a plain Linear comes here only with an int svd_rank).
            rank = self._resolve_rank(layer)
            assert rank is not None
            result = self.masker.subspace_masked(
                layer.name, domain_grads, rank, tau, generator=self._generator(layer, domain_grads.device)
            )
            masked = None
            if result is not None:
                masked, self._energy[layer.name] = result
        else:
            masked = self.masker.masked_mean(layer.name, domain_grads, tau)
        bias_masked = None
        if layer.bias_domain_grads is not None:
            bias_masked = self.masker.masked_mean(f"{layer.name}.bias", layer.bias_domain_grads, tau)
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

    @torch.no_grad()
    def _process_stack(self, layers: list[CapturedLayer], stack: Tensor) -> None:
        """The per-layer work of :meth:`_consume` for ``len(layers)`` LoRA layers of one shape and rank at once,
        on their ``(L, K, m, n)`` sums: the same numbers, batched kernels (:mod:`iga.gradients.stacked`)."""
        cfg = self.config
        names = [layer.name for layer in layers]
        masked = self.masker.stack_masked_mean(names, stack, cfg.tau_at(self._step))
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
            if self.config.stats_scope == "global":
                all_reduce_mean([flat])  # one process on the global batch, before any statistic
            keys = [key for key, _, _ in group]
            sizes = [g[0].numel() for _, _, g in group]
            masked = self.masker.flat_masked_mean(keys, sizes, flat, tau)
            if masked is None:
                self._nonfinite.extend(keys)
                continue
            for (_, param, _), part in zip(group, masked.split(sizes), strict=True):
                self._pending[param] = part.view(param.shape).to(param.dtype)

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
            self._drop_captured()
            raise
        try:
            if self._all_skip(bool(self._nonfinite)):
                self._skip_step(self._nonfinite_warning(), tau=tau)
                return
            if self.config.stat_tokens == "logic":
                self._check_all_captured()
            self._write_grads(self._pending)
            self.masker.commit()
            metrics = self._metrics(tau)
            metrics["grad_norm"] = self._clip(self.config.max_grad_norm)
            self.base_optimizer.step()
            self.last_metrics = metrics
            self.last_masks = self.masker.masks
        finally:
            self._step += 1
            self._drop_captured()

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
        metrics = {**self.masker.metrics(), "tau": tau, "skipped_steps": float(self._skipped)}
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
            **self.masker.state_dict(),
            "config": asdict(self.config),
        }

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "iga"}:
            raise ValueError(
                f"not an IGAOptimizer state_dict (keys {sorted(state_dict)}; expected 'base', 'iga')"
            )

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        self._step, self._skipped = int(state["step"]), int(state["skipped_steps"])
        what = "captured parameter" if self._space == "factor" else "captured layer"
        self.masker.load_state_dict(state, self._state_devices(), what)
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
