"""The optimizer wrapper of the gradient-side baselines (AND-mask, SAND-mask, PCGrad, CAGrad).

Data flow per optimizer step: the trainer back-propagates ``L = mean_k L_k`` inside
``capture.domains(domain_ids, num_domains=K)`` of a ``DomainGradCapture(model, space="factor")``, which leaves the
per-domain gradients ``G_k = ∂L_k/∂θ`` (K, *shape) of every LoRA factor in ``capture.factor_grads()``. On
``step()`` the wrapper turns them into one gradient per parameter (:meth:`FactorGradOptimizer.combine`), writes
it into ``.grad``, clips, steps the base optimizer and clears the capture. Trainable parameters that the capture
does not cover (norms, embeddings, LoRA biases) keep their autograd gradient, which is the mean gradient of
``L``, i.e. plain ERM.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

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


class FactorGradOptimizer(torch.optim.Optimizer):
    """Base class: wraps a base optimizer and rewrites the captured parameters' gradients before each step.

    A ``torch.optim.Optimizer`` whose ``param_groups``, ``state`` and ``defaults`` are the base optimizer's, so LR
    schedulers and Accelerate drive it as usual. Subclasses implement :meth:`combine`. Non-finite results skip the
    step (no base step, gradients zeroed), warn once and are counted in ``last_metrics["skipped_steps"]``.

    Args:
        base_optimizer: the optimizer that steps (AdamW by default).
        capture: a ``DomainGradCapture(model, space="factor")`` whose parameters the base optimizer holds.
        max_grad_norm: clip the total gradient norm to this value after the rewrite (None = off).
    """

    method: ClassVar[str] = "factor_grad"

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        capture: DomainGradCapture,
        *,
        max_grad_norm: float | None = None,
    ) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}"
            )
        if not isinstance(capture, DomainGradCapture) or capture.space != "factor":
            raise ValueError(f"{self.method}: needs a DomainGradCapture(model, space='factor')")
        self.base_optimizer, self.capture, self.max_grad_norm = base_optimizer, capture, max_grad_norm
        for name in _HOOK_NAMES:
            setattr(self, name, OrderedDict())
        self._patch_step_function()
        held = {id(p) for group in base_optimizer.param_groups for p in group["params"]}
        missing = [layer.name for layer in capture.layers for p in layer.parameters() if id(p) not in held]
        if missing:
            raise ValueError(
                f"{self.method}: trainable parameters of captured layer {missing[0]!r} are not in the base optimizer"
            )
        self._step = 0
        self._skipped = 0
        self._warned_nonfinite = False
        self._metrics: dict[str, float] = {}
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------ Optimizer pass-through
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

    # ------------------------------------------------------------ the method
    def combine(self, domain_grads: dict[nn.Parameter, Tensor]) -> dict[nn.Parameter, Tensor]:
        """Override point: the gradient to write for each parameter from its (K, *shape) per-domain gradients.

        Runs under ``torch.no_grad()``; may put floats into ``self._metrics`` for ``last_metrics``.
        """
        raise NotImplementedError

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far (including skipped ones); seeds per-step randomness."""
        return self._step

    def _params(self) -> list[nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def _skip(self) -> None:
        self._skipped += 1
        if not self._warned_nonfinite:
            warnings.warn(
                f"{self.method}: non-finite combined gradient; skipping this optimizer step (counted in "
                "last_metrics['skipped_steps'], warned once)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_nonfinite = True
        self.base_optimizer.zero_grad(set_to_none=True)
        self.last_metrics = {"skipped_steps": float(self._skipped), "skipped": 1.0}

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Write the combined gradients into ``.grad``, clip, and step the base optimizer."""
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
                self._metrics = {}
                combined = self.combine(domain_grads)
                total = torch.stack([g.sum() for g in combined.values()]).sum()
                # One host sync per step: a NaN or inf anywhere makes the sum non-finite.
                if not bool(torch.isfinite(total)):
                    self._skip()
                    return
                for param, grad in combined.items():
                    grad = grad.to(param.dtype)
                    if param.grad is None or param.grad.shape != grad.shape:
                        param.grad = grad
                    else:
                        param.grad.copy_(grad)
                metrics = dict(self._metrics)
                metrics["skipped_steps"] = float(self._skipped)
                if self.max_grad_norm is not None:
                    norm = nn.utils.clip_grad_norm_(self._params(), self.max_grad_norm)
                else:
                    grads = [p.grad for p in self._params() if p.grad is not None]
                    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                metrics["grad_norm"] = float(norm)
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
