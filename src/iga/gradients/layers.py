"""Which layers of a model get per-domain gradients: PEFT LoRA Linear wrappers and plain trainable
``nn.Linear`` modules (found by duck typing, so no peft import is needed to inspect a plain model)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class CapturedLayer:
    """One adapted linear map ``W = W0 + s·B·A`` (LoRA) or a plain trainable ``nn.Linear`` (``W`` itself).

    Attributes:
        name: qualified module name in the model.
        module: the PEFT LoRA wrapper (``peft.tuners.lora.Linear``) or the plain ``nn.Linear``.
        lora_A, lora_B: the LoRA factor weights (``r×n`` and ``m×r``), or None for a plain Linear.
        weight: the plain Linear's weight (None for LoRA layers, whose ``W0`` stays frozen).
        bias: a trainable bias of a plain Linear whose per-domain gradients are captured too, else None.
        shape: ``(m, n)`` = (out_features, in_features) of ``W``.
        domain_grads: (K, m, n) per-domain gradients of the last sync backward when no consumer is registered.
        bias_domain_grads: (K, m) companion of ``domain_grads`` for ``bias``; during a consumer call it holds the
            bias pieces of that call.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        adapter: str | None,
        shape: tuple[int, int],
        lora_A: nn.Parameter | None = None,
        lora_B: nn.Parameter | None = None,
        weight: nn.Parameter | None = None,
        bias: nn.Parameter | None = None,
    ) -> None:
        self.name, self.module, self.adapter, self.shape = name, module, adapter, shape
        self.lora_A, self.lora_B, self.weight, self.bias = lora_A, lora_B, weight, bias
        self.domain_grads: Tensor | None = None
        self.bias_domain_grads: Tensor | None = None
        # Per-domain sums of earlier micro-batches (gradient accumulation), kept until the sync micro-batch.
        self._acc: Tensor | None = None
        self._bias_acc: Tensor | None = None

    @property
    def is_lora(self) -> bool:
        """True for a LoRA wrapper, False for a plain trainable Linear."""
        return self.adapter is not None

    @property
    def scaling(self) -> float:
        """The LoRA scale ``s`` (``lora_alpha / r``, or ``/ sqrt(r)`` with rsLoRA); 1.0 for a plain Linear."""
        return float(self.module.scaling[self.adapter]) if self.adapter is not None else 1.0

    @property
    def rank(self) -> int | None:
        """The LoRA rank r, or None for a plain Linear."""
        return None if self.lora_A is None else int(self.lora_A.shape[0])

    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters whose update this layer's per-domain gradients determine."""
        return [p for p in (self.lora_A, self.lora_B, self.weight, self.bias) if p is not None]

    def __repr__(self) -> str:
        kind = f"lora r={self.rank} s={self.scaling:g}" if self.is_lora else "linear"
        return f"CapturedLayer({self.name!r}, {kind}, shape={self.shape})"


def _is_lora_wrapper(module: nn.Module) -> bool:
    # Duck-typed so that no peft import is needed to inspect a plain model.
    return hasattr(module, "base_layer") and isinstance(getattr(module, "lora_A", None), nn.ModuleDict)


def _lora_layer(name: str, module: nn.Module) -> CapturedLayer | None:
    adapters = [a for a in module.active_adapters if a in module.lora_A]
    trainable_lora = [n for n, p in module.named_parameters() if p.requires_grad and "lora" in n]
    if not adapters:
        if trainable_lora:
            raise ValueError(
                f"unsupported LoRA layer {type(module).__name__!r} at {name!r} (trainable {trainable_lora[0]!r}): "
                "DomainGradCapture supports LoRA on Linear layers only; restrict target_modules to Linear layers"
            )
        return None
    if len(adapters) > 1:
        raise ValueError(f"layer {name!r} has several active LoRA adapters {adapters}; activate exactly one")
    adapter = adapters[0]
    mod_a, mod_b = module.lora_A[adapter], module.lora_B[adapter]
    if not (isinstance(mod_a, nn.Linear) and isinstance(mod_b, nn.Linear)):
        raise ValueError(
            f"unsupported LoRA layer at {name!r}: factors are {type(mod_a).__name__}/{type(mod_b).__name__}, "
            "DomainGradCapture supports LoRA on Linear layers only"
        )
    if adapter in getattr(module, "lora_variant", {}):
        raise ValueError(
            f"LoRA variant {type(module.lora_variant[adapter]).__name__} (e.g. DoRA) at {name!r} is not supported: "
            "its output is not W0·x + s·B·A·x, so per-domain gradients of W do not map back to A and B"
        )
    if getattr(module, "merged", False):
        raise ValueError(f"LoRA layer {name!r} is merged into its base weight; unmerge it before training")
    if not (mod_a.weight.requires_grad and mod_b.weight.requires_grad):
        return None
    return CapturedLayer(
        name,
        module,
        adapter=adapter,
        shape=(mod_b.out_features, mod_a.in_features),
        lora_A=mod_a.weight,
        lora_B=mod_b.weight,
    )


def _plain_layer(name: str, module: nn.Linear) -> CapturedLayer:
    bias = module.bias if module.bias is not None and module.bias.requires_grad else None
    return CapturedLayer(
        name,
        module,
        adapter=None,
        shape=(module.out_features, module.in_features),
        weight=module.weight,
        bias=bias,
    )


def discover_layers(model: nn.Module, targets: str | Sequence[str] = "lora") -> list[CapturedLayer]:
    """Find the LoRA-adapted Linear layers and the plain trainable ``nn.Linear`` layers of ``model``.

    Args:
        model: any module, typically a ``peft.PeftModel``.
        targets: ``"lora"`` for every LoRA Linear layer plus every plain Linear with a trainable weight, or an
            explicit list of qualified module names (their other trainable parameters are then not captured).
    """
    wanted: set[str] | None
    if isinstance(targets, str):
        if targets != "lora":
            raise ValueError(f"targets must be 'lora' or a list of module names, got {targets!r}")
        wanted = None
    else:
        wanted = set(targets)
    inside_wrapper: set[int] = set()
    layers: list[CapturedLayer] = []
    for name, module in model.named_modules():
        if not _is_lora_wrapper(module):
            continue
        inside_wrapper.update(id(m) for m in module.modules() if m is not module)
        if wanted is None or name in wanted:
            layer = _lora_layer(name, module)
            if layer is not None:
                layers.append(layer)
    for name, module in model.named_modules():
        if id(module) in inside_wrapper or not isinstance(module, nn.Linear) or _is_lora_wrapper(module):
            continue
        if module.weight.requires_grad and (wanted is None or name in wanted):
            layers.append(_plain_layer(name, module))
    if wanted is not None:
        unknown = sorted(wanted - {layer.name for layer in layers})
        if unknown:
            raise ValueError(
                f"targets {unknown} are not LoRA Linear layers or trainable nn.Linear modules of the model"
            )
    return layers
