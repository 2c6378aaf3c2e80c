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
:class:`~iga.algorithms.optimizer_wrapper.OptimizerWrapper` holds what this wrapper shares with
:class:`~iga.algorithms.iga.IGAOptimizer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iga.algorithms.optimizer_wrapper import OptimizerWrapper
from iga.distributed import all_reduce_mean, check_stats_scope
from iga.gradients.capture import DomainGradCapture


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
        self._metrics: dict[str, float] = {}

    # ------------------------------------------------------------ the method
    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        """Override point: the gradient to write for each parameter from its (K, *shape) per-domain gradients.

        Runs under ``torch.no_grad()``; may put floats into ``self._metrics`` for ``last_metrics``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override combine() (the method's aggregation rule)"
        )

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Write the combined gradients into ``.grad``, average them over ranks, clip, step the base optimizer."""
        self._refuse_closure(closure, f"{self.method}: step() does not take a closure")
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
                    self._skip_step(
                        f"{self.method}: non-finite combined gradient (on this or another rank); skipping this "
                        "optimizer step (counted in last_metrics['skipped_steps'], warned once)"
                    )
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

    # ------------------------------------------------------------ checkpointing
    def _wrapper_state(self) -> dict[str, Any]:
        """The step counters (per-step randomness resumes exactly), tagged with the method."""
        return {"method": self.method, "step": self._step, "skipped_steps": self._skipped}

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "wrapper"} or state_dict["wrapper"].get("method") != self.method:
            raise ValueError(
                f"not a {self.method} optimizer state_dict (expected keys 'base', 'wrapper' with method "
                f"{self.method!r}; got keys {sorted(state_dict)})"
            )

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        super()._load_wrapper_state(state)
        self.capture.reset()
