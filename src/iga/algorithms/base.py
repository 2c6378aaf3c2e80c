"""The :class:`Algorithm` base: what every training method (ERM, IGA, the baselines) declares and builds.

The contract a trainer reads, declared as class attributes and checked when a subclass is defined
(:meth:`Algorithm.__init_subclass__`), so that no trainer discovers a capability by probing attributes:

* ``capture_space`` — the **gradient side**: which per-domain gradients the method needs: ``None`` (loss-side
  methods: ERM, V-REx, IRM, GroupDRO, Fish), ``"factor"`` (gradient-side baselines on LoRA factors: AND/SAND-mask,
  PCGrad, CAGrad, ...) or ``"full"`` (IGA). The trainer builds a :class:`~iga.gradients.DomainGradCapture` of that
  space and the method's ``wrap_optimizer`` returns an optimizer whose ``step()`` rewrites ``.grad`` from it.
* ``trainer_call`` — how the trainer turns a batch into an update (:data:`TRAINER_CALLS`):

  - ``"loss"`` (**loss side**, the default): backward of :meth:`Algorithm.loss` (the per-domain losses combined by
    ``combine_losses``), then ``optimizer.step()``;
  - ``"loss_from_logits"`` (**logits side**: IRM, Fishr): backward of :meth:`Algorithm.loss_from_logits`, whose
    penalty needs the logits, labels and domain ids, then ``optimizer.step()``;
  - ``"meta_step"`` (**meta step**: Fish): :meth:`Algorithm.meta_step` takes its own inner optimizer steps; the
    trainer calls no ``optimizer.step()``.

  The class must override the method it names, and only that one.
* ``clips_gradients`` — **who clips**: ``True`` when the method clips the gradient itself, after its own rewrite
  (IGA and the gradient-side wrappers) or inside its inner steps (Fish); its ``hparams_cls`` then has a
  ``max_grad_norm`` field, into which the trainer passes its clip value instead of clipping ``.grad`` itself.
* ``statistics_tokens`` — which target tokens the per-domain gradients are taken on (:data:`STATISTICS_TOKENS`):
  ``"all"`` (the default), or ``"logic"`` (IGA's ``stat_tokens="logic"``): the trainer then appends to each
  micro-batch a copy of its rows whose labels keep only the tokens aligned across each isomer set
  (:func:`iga.training.data.aligned_labels`), as domains K..2K−1, backpropagates the mean of all 2K losses, and
  the capture sees 2K domains: the first K for the update, the last K for the statistics. Gradient-side methods
  only; a method may set it per instance from its hyper-parameters.
* ``hparams_cls`` — a dataclass of hyper-parameters, validated in its ``__post_init__``; ``Algorithm(**hparams)``
  builds it and names the allowed fields when an unknown one is passed.
* ``last_metrics`` — floats (or detached 0-d tensors) about the last loss / meta step that the trainer logs;
  empty unless the method fills it.
* ``state_dict()`` / ``load_state_dict()`` — method state that must survive a resume (GroupDRO's q, EMAs).

A new method is one module in this package: a subclass registered with ``@register_algorithm("name")``
(:mod:`iga.algorithms.registry`), which imports every module of the package on the first lookup.

Example (a loss-side method, declared and checked at definition):
    >>> import torch
    >>> class Worst(Algorithm):
    ...     def combine_losses(self, per_domain_losses, step):
    ...         return per_domain_losses.max()
    >>> (Worst.trainer_call, Worst.capture_space, Worst.clips_gradients)
    ('loss', None, False)
    >>> Worst(num_domains=2).loss(torch.tensor([1.0, 3.0]), step=0)
    tensor(3.)
    >>> class Broken(Algorithm):
    ...     trainer_call = "loss_from_logits"
    Traceback (most recent call last):
    ...
    TypeError: Broken.trainer_call = 'loss_from_logits' but Broken does not override loss_from_logits()
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iga.gradients.capture import CAPTURE_SPACES, DomainGradCapture

BASE_OPTIMIZERS = ("adamw", "adam", "sgd")
STATISTICS_TOKENS = ("all", "logic")
#: The ways a trainer drives a method (``Algorithm.trainer_call``); see the module docstring.
TRAINER_CALLS = ("loss", "loss_from_logits", "meta_step")


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
        >>> (erm.trainer_call, erm.capture_space, erm.clips_gradients, erm.last_metrics)
        ('loss', None, False, {})
    """

    name: ClassVar[str] = ""
    #: Gradient side: ``None`` or one of :data:`~iga.gradients.capture.CAPTURE_SPACES`.
    capture_space: ClassVar[str | None] = None
    #: One of :data:`TRAINER_CALLS`: which method the trainer calls each step.
    trainer_call: ClassVar[str] = "loss"
    #: The method clips the gradient itself (``hparams_cls`` has ``max_grad_norm``); the trainer does not.
    clips_gradients: ClassVar[bool] = False
    #: One of :data:`STATISTICS_TOKENS`: the target tokens the per-domain gradients are taken on.
    statistics_tokens: str = "all"
    hparams_cls: ClassVar[type] = NoHParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the declared contract when the subclass is defined (a mistake fails at import, not mid-run)."""
        super().__init_subclass__(**kwargs)
        where = cls.__name__
        if cls.capture_space is not None and cls.capture_space not in CAPTURE_SPACES:
            raise TypeError(f"{where}.capture_space must be None or one of {CAPTURE_SPACES}")
        if cls.trainer_call not in TRAINER_CALLS:
            raise TypeError(f"{where}.trainer_call must be one of {TRAINER_CALLS}, got {cls.trainer_call!r}")
        for call in TRAINER_CALLS[1:]:
            overridden = getattr(cls, call) is not getattr(Algorithm, call)
            if overridden != (cls.trainer_call == call):
                if overridden:
                    raise TypeError(
                        f"{where} overrides {call}() but declares trainer_call = {cls.trainer_call!r}"
                    )
                raise TypeError(f"{where}.trainer_call = {call!r} but {where} does not override {call}()")
        if cls.statistics_tokens not in STATISTICS_TOKENS:
            raise TypeError(f"{where}.statistics_tokens must be one of {STATISTICS_TOKENS}")
        if cls.trainer_call == "meta_step" and cls.capture_space is not None:
            raise TypeError(f"{where}: a meta_step method takes its own steps and uses no capture_space")
        if not is_dataclass(cls.hparams_cls):
            raise TypeError(f"{where}.hparams_cls must be a dataclass, got {cls.hparams_cls!r}")
        has_clip = "max_grad_norm" in {f.name for f in fields(cls.hparams_cls)}
        if cls.clips_gradients != has_clip:
            raise TypeError(
                f"{where}: clips_gradients = {cls.clips_gradients} but its hparams_cls "
                f"{'has' if has_clip else 'has no'} max_grad_norm field (the trainer passes its clip value there)"
            )

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < 2:
            raise ValueError(f"num_domains must be an int >= 2, got {num_domains!r}")
        allowed = [f.name for f in fields(self.hparams_cls)]
        unknown = sorted(set(hparams) - set(allowed))
        if unknown:
            raise ValueError(
                f"{self.name or type(self).__name__}: unknown hyper-parameter(s) {unknown}; allowed: {allowed or 'none'}"
            )
        self.num_domains = num_domains
        self.hparams = self.hparams_cls(**hparams)
        #: What the method reports about its last loss / meta step (floats or detached 0-d tensors).
        self.last_metrics: dict[str, Any] = {}

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

    def loss_from_logits(
        self, per_domain_losses: Tensor, logits: Tensor, labels: Tensor, domain_ids: Tensor, step: int
    ) -> Tensor:
        """Logits side (``trainer_call = "loss_from_logits"``): the objective of one (micro-)batch from its
        per-domain losses and the logits, labels and domain ids that a penalty needs (IRM, Fishr)."""
        raise NotImplementedError(
            f"{self.name or type(self).__name__}: trainer_call is {self.trainer_call!r}, not 'loss_from_logits'"
        )

    def meta_step(
        self,
        domain_backward: Callable[[int], Tensor | float],
        step: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, float]:
        """Meta step (``trainer_call = "meta_step"``): one whole update at optimizer step ``step``.

        ``domain_backward(k)`` back-propagates domain k's loss of this step's batch (leaving ``∇L_k`` in ``.grad``)
        and returns it; the method takes its own steps with ``optimizer`` and returns
        ``{"loss": ..., "loss/<k>": ...}``. The trainer then steps the scheduler only.
        """
        raise NotImplementedError(
            f"{self.name or type(self).__name__}: trainer_call is {self.trainer_call!r}, not 'meta_step'"
        )

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
