"""The :class:`Algorithm` base: what every training method (ERM, IGA, the baselines) declares and builds.

Extension points, so that one file + one registry line adds a method:

* ``capture_space`` — which per-domain gradients the method needs: ``None`` (loss-side methods: ERM, V-REx,
  IRM, GroupDRO), ``"factor"`` (gradient-side baselines on LoRA factors: AND/SAND-mask, PCGrad, CAGrad, Fishr,
  ...) or ``"full"`` (IGA). The trainer builds a :class:`~iga.gradients.DomainGradCapture` of that space.
* ``hparams_cls`` — a dataclass of hyper-parameters, validated in its ``__post_init__``; ``Algorithm(**hparams)``
  builds it and names the allowed fields when an unknown one is passed.
* ``combine_losses(per_domain_losses, step)`` — the training objective from the (K,) per-domain losses
  (default: their mean, DESIGN §3). Loss-side methods override it (V-REx adds a variance penalty, GroupDRO
  re-weights). :meth:`loss` validates the input and calls it.
* ``wrap_optimizer(base_optimizer, model, capture)`` — gradient-side methods wrap the base optimizer so that
  ``step()`` rewrites ``.grad`` from the captured per-domain gradients (IGA: :class:`IGAOptimizer`).
* ``state_dict()`` / ``load_state_dict()`` — method state that must survive a resume (GroupDRO's q, EMAs).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iga.gradients.capture import CAPTURE_SPACES, DomainGradCapture

BASE_OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass
class NoHParams:
    """Hyper-parameters of a method that has none."""


def make_base_optimizer(
    params: Iterable[nn.Parameter],
    *,
    base: str | type[torch.optim.Optimizer] = "adamw",
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """The plain optimizer that ERM uses and that gradient-side methods wrap.

    ``base`` is ``"adamw"``, ``"adam"``, ``"sgd"`` (``betas`` unused) or an optimizer class, called as
    ``cls(params, lr=..., weight_decay=...)`` plus ``betas=`` when its signature has it.
    """
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    if not isinstance(lr, int | float) or lr < 0:
        raise ValueError(f"lr must be a number >= 0, got {lr!r}")
    if isinstance(base, str):
        if base == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
        if base == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas)
        if base == "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
        raise ValueError(
            f"base optimizer must be one of {BASE_OPTIMIZERS} or an optimizer class, got {base!r}"
        )
    if not (inspect.isclass(base) and issubclass(base, torch.optim.Optimizer)):
        raise ValueError(
            f"base optimizer must be one of {BASE_OPTIMIZERS} or a torch.optim.Optimizer class, got {base!r}"
        )
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if "betas" in inspect.signature(base).parameters:
        kwargs["betas"] = betas
    return base(params, **kwargs)


class Algorithm:
    """A training method: its objective from per-domain losses and its optimizer (see the module docstring).

    Example:
        >>> import torch
        >>> from iga.algorithms import get_algorithm
        >>> erm = get_algorithm("erm")(num_domains=2)
        >>> erm.loss(torch.tensor([1.0, 3.0]), step=0)
        tensor(2.)
    """

    name: ClassVar[str] = ""
    capture_space: ClassVar[str | None] = None
    hparams_cls: ClassVar[type] = NoHParams

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < 2:
            raise ValueError(f"num_domains must be an int >= 2, got {num_domains!r}")
        if self.capture_space is not None and self.capture_space not in CAPTURE_SPACES:
            raise TypeError(f"{type(self).__name__}.capture_space must be None or one of {CAPTURE_SPACES}")
        allowed = [f.name for f in fields(self.hparams_cls)]
        unknown = sorted(set(hparams) - set(allowed))
        if unknown:
            raise ValueError(
                f"{self.name or type(self).__name__}: unknown hyper-parameter(s) {unknown}; allowed: {allowed or 'none'}"
            )
        self.num_domains = num_domains
        self.hparams = self.hparams_cls(**hparams)

    def loss(self, per_domain_losses: Tensor, step: int) -> Tensor:
        """The scalar training objective at optimizer step ``step`` from the (K,) per-domain losses."""
        if per_domain_losses.shape != (self.num_domains,):
            raise ValueError(
                f"per_domain_losses must have shape ({self.num_domains},), got {tuple(per_domain_losses.shape)}"
            )
        if not per_domain_losses.is_floating_point():
            raise TypeError(f"per_domain_losses must be floating point, got {per_domain_losses.dtype}")
        return self.combine_losses(per_domain_losses, step)

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        """Override point: default ``L = (1/K) Σ_k L_k``."""
        return per_domain_losses.mean()

    def build_optimizer(
        self,
        model: nn.Module,
        params: Iterable[nn.Parameter],
        capture: DomainGradCapture | None = None,
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        base: str | type[torch.optim.Optimizer] = "adamw",
    ) -> torch.optim.Optimizer:
        """Build the base optimizer over ``params`` and let the method wrap it; checks the capture's space."""
        if self.capture_space is None and capture is not None:
            raise ValueError(f"{self.name}: this method uses no per-domain gradients; pass capture=None")
        if self.capture_space is not None and (capture is None or capture.space != self.capture_space):
            got = None if capture is None else capture.space
            raise ValueError(
                f"{self.name}: needs a DomainGradCapture(model, space={self.capture_space!r}), got space={got!r}"
            )
        base_optimizer = make_base_optimizer(params, base=base, lr=lr, weight_decay=weight_decay, betas=betas)
        return self.wrap_optimizer(base_optimizer, model, capture)

    def wrap_optimizer(
        self, base_optimizer: torch.optim.Optimizer, model: nn.Module, capture: DomainGradCapture | None
    ) -> torch.optim.Optimizer:
        """Override point: gradient-side methods return a wrapper of ``base_optimizer``; default: unchanged."""
        return base_optimizer

    def state_dict(self) -> dict[str, Any]:
        """Override point: method state to checkpoint (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Override point: restore :meth:`state_dict`."""
        if state:
            raise ValueError(f"{self.name}: has no state to load, got keys {sorted(state)}")
