"""The base of the gradient-rewriting optimizers (:class:`~iga.algorithms.iga.IGAOptimizer` and
:class:`~iga.algorithms.gradient_wrapper.FactorGradOptimizer`): everything but the rewrite itself.

An :class:`OptimizerWrapper` is a ``torch.optim.Optimizer`` whose ``param_groups``, ``state`` and ``defaults`` are
the base optimizer's, so LR schedulers, the HF Trainer and Accelerate drive it as usual (Opacus ``DPOptimizer`` /
PEFT ``create_riemannian_optimizer`` pattern). It keeps the bookkeeping both wrappers share: the step and skip
counters, ``last_metrics``, the skipped step (warned once), ``zero_grad``, the ``{"base": ..., <key>: ...}``
checkpoint layout, and the collective skip / gradient write / clip of a step. A subclass implements ``step()``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iga.distributed import all_reduce_mean, any_rank
from iga.gradients.capture import DomainGradCapture

_HOOK_NAMES = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


class OptimizerWrapper(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that rewrites gradients from a capture and delegates the step to a base optimizer.

    Subclasses implement ``step()`` with :meth:`_refuse_closure`, :meth:`_all_skip`, :meth:`_skip_step`,
    :meth:`_write_grads` and :meth:`_clip`, and override :meth:`_drop_captured`, :meth:`_wrapper_state` /
    :meth:`_load_wrapper_state` (checkpointed under :attr:`state_key`) and :meth:`_check_state_dict`.

    Example:
        >>> import torch
        >>> from iga.gradients import DomainGradCapture
        >>> net = torch.nn.Linear(2, 1)
        >>> sgd = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> opt = OptimizerWrapper(sgd, DomainGradCapture(net), "demo")
        >>> opt.param_groups is sgd.param_groups, opt.step_count, opt.last_metrics, sorted(opt.state_dict())
        (True, 0, {}, ['base', 'wrapper'])
    """

    #: Key of the wrapper's own entry next to ``"base"`` in :meth:`state_dict`.
    state_key: ClassVar[str] = "wrapper"

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
        self._owner = owner
        self._step = 0
        self._skipped = 0
        self._warned_nonfinite = False
        #: What the last ``step()`` measured (floats); ``{"skipped_steps": n, "skipped": 1.0, ...}`` after a skip.
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------ the base optimizer's groups, state, defaults
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

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far (including skipped ones); seeds per-step randomness."""
        return self._step

    # ------------------------------------------------------------ pieces of a step
    def _params(self) -> list[nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def _refuse_closure(self, closure: Any, message: str) -> None:
        if closure is not None:
            raise ValueError(message)

    def _all_skip(self, skip: bool) -> bool:
        # Collective under DDP: every rank skips or none does (a lone skipping rank would leave the others waiting
        # in the gradient all-reduce of _write_grads).
        return any_rank(skip, like=self._params()[0])

    def _skip_step(self, warning: str, **metrics: float) -> None:
        """Count a skipped step, warn once (``warning``), zero the gradients; ``last_metrics`` says it skipped."""
        self._skipped += 1
        if not self._warned_nonfinite:
            warnings.warn(warning, RuntimeWarning, stacklevel=3)  # the caller of step()
            self._warned_nonfinite = True
        self.base_optimizer.zero_grad(set_to_none=True)
        self.last_metrics = {**metrics, "skipped_steps": float(self._skipped), "skipped": 1.0}

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

    # ------------------------------------------------------------ zero_grad
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the base optimizer's gradients and drop what was captured or computed since the last step."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)
        self._drop_captured()

    def _drop_captured(self) -> None:
        """Override point: forget the per-domain gradients captured since the last step (default: reset the capture)."""
        self.capture.reset()

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """``{"base": the base optimizer's state_dict, state_key: the wrapper's own state}``."""
        return {"base": self.base_optimizer.state_dict(), self.state_key: self._wrapper_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self._check_state_dict(state_dict)
        self.base_optimizer.load_state_dict(state_dict["base"])
        self._load_wrapper_state(state_dict[self.state_key])

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Override point: raise ``ValueError`` unless ``state_dict`` was written by this kind of wrapper."""
        if set(state_dict) != {"base", self.state_key}:
            raise ValueError(
                f"not a {self._owner} state_dict (keys {sorted(state_dict)}; expected 'base', {self.state_key!r})"
            )

    def _wrapper_state(self) -> dict[str, Any]:
        """Override point: the wrapper's own state (default: the step and skip counters)."""
        return {"step": self._step, "skipped_steps": self._skipped}

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        """Override point: restore :meth:`_wrapper_state`."""
        self._step = int(state["step"])
        self._skipped = int(state["skipped_steps"])
