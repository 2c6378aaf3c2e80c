"""The optimizer wrapper of the gradient-side baselines (AND-mask, SAND-mask, PCGrad, CAGrad).

Data flow per optimizer step: the trainer back-propagates ``L = mean_k L_k`` inside
``capture.domains(domain_ids, num_domains=K)`` of a ``DomainGradCapture(model, space="factor")``, which leaves the
per-domain gradients ``G_k = ∂L_k/∂θ`` (K, *shape) of every LoRA factor in ``capture.factor_grads()``. On
``step()`` the wrapper turns them into one gradient per parameter (:meth:`FactorGradOptimizer.combine`), writes
it into ``.grad``, clips, steps the base optimizer and clears the capture. Trainable parameters that the capture
does not cover (norms, embeddings, LoRA biases) keep their autograd gradient, which is the mean gradient of
``L``, i.e. plain ERM.

Data parallelism (DDP): with ``stats_scope="global"`` (default here, unlike IGA: factor-space sums are only
``K × LoRA`` numbers) the per-domain factor gradients are averaged over the ranks before :meth:`combine`, so every
rank combines the global batch's gradients exactly as one process would; with ``"local"`` each rank combines its
own. Either way the written gradients of every trainable parameter are then averaged over the ranks, so the
backward may run under DDP's ``no_sync()`` (DDP's own all-reduce of ``.grad`` would be overwritten anyway).
:class:`OptimizerWrapper` holds what this wrapper shares with :class:`~iga.algorithms.iga.IGAOptimizer`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iga.distributed import all_reduce_mean, any_rank, check_stats_scope
from iga.gradients.capture import DomainGradCapture

_HOOK_NAMES = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


def gramian(domain_grads: Iterable[Tensor]) -> Tensor:
    """The (K, K) float64 Gramian ``A_ij = ⟨g_i, g_j⟩`` of the per-domain gradients, summed over tensors.

    Example:
        >>> import torch
        >>> gramian([torch.tensor([[1.0, 0.0], [1.0, 1.0]])])
        tensor([[1., 1.],
                [1., 2.]], dtype=torch.float64)
    """
    total: Tensor | None = None
    for g in domain_grads:
        flat = g.flatten(1)
        part = (flat @ flat.T).double()
        total = part if total is None else total + part
    if total is None:
        raise ValueError("gramian needs at least one (K, ...) gradient tensor")
    return total


def combine_domains(domain_grads: dict[nn.Parameter, Tensor], weights: Tensor) -> dict[nn.Parameter, Tensor]:
    """``Σ_k weights_k · G_k`` for every parameter (weights (K,))."""
    out = {}
    for param, g in domain_grads.items():
        w = weights.to(device=g.device, dtype=g.dtype)
        out[param] = torch.tensordot(w, g, dims=1)
    return out


class OptimizerWrapper(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that rewrites gradients from a capture and delegates the step to a base optimizer.

    Its ``param_groups``, ``state`` and ``defaults`` are the base optimizer's, so LR schedulers, the HF Trainer and
    Accelerate drive it as usual (Opacus ``DPOptimizer`` / PEFT ``create_riemannian_optimizer`` pattern).
    Subclasses implement ``step()`` with :meth:`_all_skip`, :meth:`_write_grads` and :meth:`_clip`.
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, capture: DomainGradCapture, owner: str) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}"
            )
        self.base_optimizer, self.capture = base_optimizer, capture
        for name in _HOOK_NAMES:
            setattr(self, name, OrderedDict())
        self._patch_step_function()
        held = {id(p) for group in base_optimizer.param_groups for p in group["params"]}
        missing = [layer.name for layer in capture.layers for p in layer.parameters() if id(p) not in held]
        if missing:
            raise ValueError(
                f"{owner}: trainable parameters of captured layer {missing[0]!r} are not in the base optimizer"
            )

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base_optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.base_optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base_optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.base_optimizer.defaults = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)

    def _params(self) -> list[nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def _all_skip(self, skip: bool) -> bool:
        # Collective under DDP: every rank skips or none does (a lone skipping rank would leave the others waiting
        # in the gradient all-reduce of _write_grads).
        return any_rank(skip, like=self._params()[0])

    @torch.no_grad()
    def _write_grads(self, grads: dict[nn.Parameter, Tensor]) -> None:
        """Write ``grads`` into ``.grad``, then average every trainable gradient over the ranks (no-op in one)."""
        for param, grad in grads.items():
            grad = grad.to(param.dtype)
            if param.grad is None or param.grad.shape != grad.shape:
                param.grad = grad
            else:
                param.grad.copy_(grad)
        all_reduce_mean([p.grad for p in self._params() if p.grad is not None])

    @torch.no_grad()
    def _clip(self, max_grad_norm: float | None) -> float:
        """Clip the total gradient norm to ``max_grad_norm`` (None = off); return the norm before clipping."""
        params = self._params()
        if max_grad_norm is not None:
            return float(nn.utils.clip_grad_norm_(params, max_grad_norm))
        grads = [p.grad for p in params if p.grad is not None]
        # .to(): a model split over several devices has its gradients on several devices.
        norms = [torch.linalg.vector_norm(g).to(grads[0].device) for g in grads]
        return float(torch.linalg.vector_norm(torch.stack(norms)))


class FactorGradOptimizer(OptimizerWrapper):
    """Base class: wraps a base optimizer and rewrites the captured parameters' gradients before each step.

    Subclasses implement :meth:`combine`. Non-finite results skip the step (no base step, gradients zeroed), warn
    once and are counted in ``last_metrics["skipped_steps"]``.

    Args:
        base_optimizer: the optimizer that steps (AdamW by default).
        capture: a ``DomainGradCapture(model, space="factor")`` whose parameters the base optimizer holds.
        max_grad_norm: clip the total gradient norm to this value after the rewrite (None = off).
        stats_scope: under DDP, ``"global"`` — average the per-domain factor gradients over the ranks before
            :meth:`combine` (one process on the global batch; ``K × LoRA`` traffic); ``"local"`` — combine each
            rank's own. Identical in one process.
    """

    method: ClassVar[str] = "factor_grad"

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        capture: DomainGradCapture,
        *,
        max_grad_norm: float | None = None,
        stats_scope: str = "global",
    ) -> None:
        if not isinstance(capture, DomainGradCapture) or capture.space != "factor":
            raise ValueError(f"{self.method}: needs a DomainGradCapture(model, space='factor')")
        check_stats_scope(stats_scope, f"{self.method}: stats_scope")
        super().__init__(base_optimizer, capture, self.method)
        self.max_grad_norm, self.stats_scope = max_grad_norm, stats_scope
        self._step = 0
        self._skipped = 0
        self._warned_nonfinite = False
        self._metrics: dict[str, float] = {}
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------ the method
    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        """Override point: the gradient to write for each parameter from its (K, *shape) per-domain gradients.

        Runs under ``torch.no_grad()``; may put floats into ``self._metrics`` for ``last_metrics``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override combine() (the method's aggregation rule)"
        )

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far (including skipped ones); seeds per-step randomness."""
        return self._step

    def _skip(self) -> None:
        self._skipped += 1
        if not self._warned_nonfinite:
            warnings.warn(
                f"{self.method}: non-finite combined gradient (on this or another rank); skipping this optimizer "
                "step (counted in last_metrics['skipped_steps'], warned once)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_nonfinite = True
        self.base_optimizer.zero_grad(set_to_none=True)
        self.last_metrics = {"skipped_steps": float(self._skipped), "skipped": 1.0}

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Write the combined gradients into ``.grad``, average them over ranks, clip, step the base optimizer."""
        if closure is not None:
            raise ValueError(f"{self.method}: step() does not take a closure")
        domain_grads = self.capture.factor_grads()
        if not domain_grads:
            raise RuntimeError(
                f"{self.method}: no per-domain gradients were captured since the last step. Run forward AND backward "
                "inside `with capture.domains(domain_ids, num_domains=K):`"
            )
        try:
            with torch.no_grad():
                if self.stats_scope == "global":
                    # Parameter order, not capture order, so that every rank reduces the same sequence.
                    all_reduce_mean([domain_grads[p] for p in self._params() if p in domain_grads])
                self._metrics = {}
                combined = self.combine(domain_grads)
                total = torch.stack([g.sum() for g in combined.values()]).sum()
                # One host sync per step: a NaN or inf anywhere makes the sum non-finite.
                if self._all_skip(not bool(torch.isfinite(total))):
                    self._skip()
                    return
                self._write_grads(combined)
                metrics = dict(self._metrics)
                metrics["skipped_steps"] = float(self._skipped)
                metrics["grad_norm"] = self._clip(self.max_grad_norm)
            self.base_optimizer.step()
            self.last_metrics = metrics
        finally:
            self._step += 1
            self.capture.reset()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the base optimizer's gradients and drop the per-domain gradients captured so far."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)
        self.capture.reset()

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Base optimizer state plus the wrapper's step counters (per-step randomness resumes exactly)."""
        return {
            "base": self.base_optimizer.state_dict(),
            "wrapper": {"method": self.method, "step": self._step, "skipped_steps": self._skipped},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if set(state_dict) != {"base", "wrapper"} or state_dict["wrapper"].get("method") != self.method:
            raise ValueError(
                f"not a {self.method} optimizer state_dict (expected keys 'base', 'wrapper' with method "
                f"{self.method!r}; got keys {sorted(state_dict)})"
            )
        self.base_optimizer.load_state_dict(state_dict["base"])
        self._step = int(state_dict["wrapper"]["step"])
        self._skipped = int(state_dict["wrapper"]["skipped_steps"])
        self.capture.reset()
