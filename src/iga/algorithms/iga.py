"""Invariant Gradient Alignment (DESIGN §3): mask conflicting coordinates of each layer's mean gradient, project
onto rank r, map back to the LoRA factors, then let the base optimizer step.

Data flow per step: ``DomainGradCapture(space="full")`` hands each layer's (K, m, n) per-domain gradients to
:class:`IGAOptimizer` inside the backward; the optimizer computes ``Ḡ, V, V̂, M, G̃ = M ⊙ Ḡ``, the projection and
the factor gradients at once and keeps only those (r(m+n) numbers per layer), so no two layers' full matrices
are alive together. ``step()`` writes them into ``.grad`` (autograd is still accumulating into A and B while the
hook runs, so ``.grad`` is never touched there), clips, and steps the base optimizer.

Data parallelism (DDP): with ``stats_scope="global"`` the capture averages each layer's per-domain sums over the
ranks inside the backward (before the statistics); with ``"local"`` every rank masks and projects its own sums.
In both scopes ``step()`` then averages the written gradients of every trainable parameter over the ranks (one
LoRA-sized all-reduce, which also keeps the ranks bitwise in sync), so the backward may run under DDP's
``no_sync()``: DDP's own all-reduce of ``.grad`` would be overwritten anyway.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from iga.algorithms.base import Algorithm, make_base_optimizer
from iga.algorithms.gradient_wrapper import OptimizerWrapper
from iga.algorithms.iga_config import IGAConfig
from iga.algorithms.lora_map import map_products, project_products
from iga.algorithms.mask import domain_statistics, normalised_variance
from iga.algorithms.registry import register_algorithm
from iga.distributed import all_reduce_mean
from iga.gradients.capture import CapturedLayer, DomainGradCapture


class IGAOptimizer(OptimizerWrapper):
    """Wraps a base optimizer (AdamW by default) and rewrites the LoRA gradients with IGA before each step.

    It is a ``torch.optim.Optimizer`` whose ``param_groups``, ``state`` and ``defaults`` are the base optimizer's
    (:class:`~iga.algorithms.gradient_wrapper.OptimizerWrapper`), so LR schedulers, the HF Trainer and Accelerate
    drive it as usual.

    Parameters that are not LoRA factors of a captured layer (norms, embeddings, LoRA biases) keep their autograd
    gradient, which is already the mean gradient of ``L = (1/K) Σ_k L_k``, i.e. plain ERM. Plain trainable
    ``nn.Linear`` layers get the masked mean ``G̃`` directly (weight and trainable bias), without projection.

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

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        capture: DomainGradCapture,
        config: IGAConfig | None = None,
    ) -> None:
        if not isinstance(capture, DomainGradCapture) or capture.space != "full":
            raise ValueError("IGAOptimizer needs a DomainGradCapture(model, space='full')")
        super().__init__(base_optimizer, capture, "IGAOptimizer")
        self.config = config if config is not None else IGAConfig()
        self._layer_index = {id(layer): i for i, layer in enumerate(capture.layers)}
        self._step = 0
        self._skipped = 0
        self._ema_steps = 0
        self._ema: dict[str, tuple[Tensor, Tensor]] = {}
        self._domain_ema_steps = 0
        self._domain_ema: dict[str, Tensor] = {}
        self._warned_nonfinite = False
        self.last_metrics: dict[str, float] = {}
        self._clear_pending()
        capture.set_consumer(self._consume)
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

    def _averaged_domain_grads(self, key: str, domain_grads: Tensor) -> Tensor:
        """The bias-corrected EMA of the per-domain gradients (``domain_ema_beta``), staged until ``step()``."""
        beta = self.config.domain_ema_beta
        grads = domain_grads.to(torch.promote_types(domain_grads.dtype, torch.float32))
        old = self._domain_ema.get(key)
        new = grads * (1 - beta) if old is None else old * beta + grads * (1 - beta)
        # Staged like the statistics EMA: a skipped step must not enter the running average.
        self._pending_domain_ema[key] = new
        return new / (1 - beta ** (self._domain_ema_steps + 1))

    def _masked_mean(self, key: str, domain_grads: Tensor, tau: float) -> Tensor | None:
        cfg = self.config
        if cfg.domain_ema_beta > 0:
            # Statistics (and so the mask) from the averaged G_k; the masked direction is this step's mean.
            stat_mean, var = domain_statistics(self._averaged_domain_grads(key, domain_grads))
            mean = domain_grads.to(stat_mean.dtype).mean(0)
            mean_sq = stat_mean.square()
        else:
            mean, var = domain_statistics(domain_grads)
            mean_sq = mean.square()
        if cfg.ema_beta > 0:
            old = self._ema.get(key)
            beta = cfg.ema_beta
            new_var = var * (1 - beta) if old is None else old[0] * beta + var * (1 - beta)
            new_sq = mean_sq * (1 - beta) if old is None else old[1] * beta + mean_sq * (1 - beta)
            # Staged until step(): a skipped step must not enter the running statistics.
            self._pending_ema[key] = (new_var, new_sq)
            correction = 1 - beta ** (self._ema_steps + 1)
            var, mean_sq = new_var / correction, new_sq / correction
        # In place from here on (var, mean_sq are this call's own buffers): V̂, then M, then G̃ = M ⊙ Ḡ.
        vhat = normalised_variance(var, mean_sq, cfg.variance_norm, cfg.eps, inplace=True)
        vhat_sum = vhat.sum()
        mask = vhat.mul_(-tau).exp_()
        self._stat_sums.append(torch.stack([mask.sum(), (mask < 0.5).sum().to(mask.dtype), vhat_sum]))
        self._numel += mask.numel()
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

    @torch.no_grad()
    def _consume(self, layer: CapturedLayer, domain_grads: Tensor) -> None:
        tau = self.config.tau_at(self._step)
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
        rank = self._resolve_rank(layer)
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

    # ------------------------------------------------------------ step
    def _skip(self, tau: float) -> None:
        self._skipped += 1
        if not self._warned_nonfinite:
            where = (
                f"in {self._nonfinite[:3]} ({len(self._nonfinite)} layer(s))"
                if self._nonfinite
                else "on another rank"
            )
            warnings.warn(
                f"IGA: non-finite gradient statistics {where}; skipping this optimizer step (counted in "
                "last_metrics['skipped_steps'], warned once)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_nonfinite = True
        self.base_optimizer.zero_grad(set_to_none=True)
        self.last_metrics = {"tau": tau, "skipped_steps": float(self._skipped), "skipped": 1.0}

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Write the IGA factor gradients into ``.grad``, average them over ranks, clip, step the base optimizer."""
        if closure is not None:
            raise ValueError(
                "IGAOptimizer.step does not take a closure (closure-based optimizers are not supported)"
            )
        tau = self.config.tau_at(self._step)
        if not self._nonfinite and not self._pending:
            raise RuntimeError(
                "IGAOptimizer.step(): no per-domain gradients were captured since the last step. Run forward AND "
                "backward inside `with capture.domains(domain_ids, num_domains=K, sync=True):` (sync=True on the "
                "last micro-batch of an accumulation step)"
            )
        try:
            if self._all_skip(bool(self._nonfinite)):
                self._skip(tau)
                return
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
        finally:
            self._step += 1
            self._clear_pending()

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the base optimizer's gradients and drop IGA gradients computed since the last step."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)
        self._clear_pending()

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Base optimizer state plus the IGA step counters and EMA buffers (resume is exact)."""
        return {
            "base": self.base_optimizer.state_dict(),
            "iga": {
                "step": self._step,
                "skipped_steps": self._skipped,
                "ema_steps": self._ema_steps,
                "ema": {k: {"var": v.clone(), "mean_sq": s.clone()} for k, (v, s) in self._ema.items()},
                "domain_ema_steps": self._domain_ema_steps,
                "domain_ema": {k: v.clone() for k, v in self._domain_ema.items()},
                "config": asdict(self.config),
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if set(state_dict) != {"base", "iga"}:
            raise ValueError(
                f"not an IGAOptimizer state_dict (keys {sorted(state_dict)}; expected 'base', 'iga')"
            )
        self.base_optimizer.load_state_dict(state_dict["base"])
        iga = state_dict["iga"]
        devices = {layer.name: layer.parameters()[0].device for layer in self.capture.layers}
        self._step, self._skipped, self._ema_steps = (
            int(iga["step"]),
            int(iga["skipped_steps"]),
            int(iga["ema_steps"]),
        )
        self._ema = {}
        for key, value in iga["ema"].items():
            device = devices.get(key.removesuffix(".bias"))
            if device is None:
                raise ValueError(f"state_dict has EMA statistics for {key!r}, which is not a captured layer")
            self._ema[key] = (value["var"].to(device), value["mean_sq"].to(device))
        # Absent in checkpoints written before domain_ema_beta existed: no running average yet.
        self._domain_ema_steps = int(iga.get("domain_ema_steps", 0))
        self._domain_ema = {}
        for key, value in iga.get("domain_ema", {}).items():
            device = devices.get(key.removesuffix(".bias"))
            if device is None:
                raise ValueError(
                    f"state_dict has domain EMA gradients for {key!r}, which is not a captured layer"
                )
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
    capture: DomainGradCapture | None = None,
) -> IGAOptimizer:
    """Build ``IGAOptimizer(base(trainable params), DomainGradCapture(model, space="full"), IGAConfig(...))``.

    Keyword-only, like PEFT's ``create_loraplus_optimizer``; the IGA options are those of :class:`IGAConfig`.
    Pass ``capture`` to reuse an existing full-space capture of ``model``. Then, per step::

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
    )
    if capture is None:
        capture = DomainGradCapture(model, space="full")
    elif capture.model is not model or capture.space != "full":
        raise ValueError("capture must be a DomainGradCapture(model, space='full') of this model")
    params = [p for p in model.parameters() if p.requires_grad]
    base_optimizer = make_base_optimizer(params, base=base, lr=lr, weight_decay=weight_decay, betas=betas)
    return IGAOptimizer(base_optimizer, capture, config)


@register_algorithm("iga")
class IGA(Algorithm):
    """IGA as a registered algorithm: mean objective, full-space capture, :class:`IGAOptimizer` around the base.

    Example:
        >>> IGA(num_domains=4, tau=5.0).hparams.tau
        5.0
    """

    capture_space = "full"
    hparams_cls = IGAConfig

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        assert capture is not None  # checked by build_optimizer
        return IGAOptimizer(base_optimizer, capture, self.hparams)
