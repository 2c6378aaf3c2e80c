"""Per-domain gradients from ONE backward, through module hooks (docs/method.md §1).

For every hooked linear map, a forward hook keeps the detached input ``x`` and registers a tensor hook on the
output; that hook receives ``δ = ∂L/∂y`` and splits ``Σ_t δ_t x_tᵀ`` by domain (one matmul per domain). Because
the tensor hook is registered only when grad is enabled and the output requires grad, both styles of gradient
checkpointing work: under reentrant checkpointing the no-grad first forward registers nothing and the
recomputation registers the hook; under non-reentrant checkpointing the original forward registers it and the
recomputed outputs are never back-propagated.

Convention (pinned by the tests): the trainer back-propagates ``L = (1/K) Σ_k L_k`` (optionally divided by the
number of accumulation steps), so each δ carries a factor 1/K; the capture multiplies the pieces by K and reports
``G_k = ∂L_k/∂W`` exactly. Hence ``(1/K) Σ_k G_k`` equals the ordinary autograd gradient of ``L``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from iga.gradients.layers import CapturedLayer, discover_layers
from iga.gradients.partition import DomainPartition, check_not_packed, sums_dtype

CaptureSpace = Literal["full", "factor"]
CAPTURE_SPACES = ("full", "factor")


@dataclass(eq=False)
class _FactorTarget:
    """A small Linear hooked in factor space (``lora_A``, ``lora_B`` or a plain trainable Linear)."""

    name: str
    module: nn.Module
    weight: nn.Parameter
    bias: nn.Parameter | None


@dataclass(eq=False)
class _Context:
    partition: DomainPartition
    sync: bool
    dispatched: set[int] = field(default_factory=set)


Consumer = Callable[[CapturedLayer, Tensor], None]
Reducer = Callable[[list[Tensor]], None]
#: ``buffer(layer, shape, dtype, device)`` -> a (K, m, n) tensor to write the layer's sums into, or None.
Buffer = Callable[[CapturedLayer, tuple[int, int, int], torch.dtype, torch.device], Tensor | None]


class DomainGradCapture:
    """Per-domain gradients of every adapted linear layer from one ordinary backward.

    Args:
        model: a PEFT LoRA model (LoRA on Linear layers) and/or a model with trainable ``nn.Linear`` layers.
        space: ``"full"`` — per adapted layer the full-matrix gradients ``G_k = ∂L_k/∂W`` (K, m, n), handed to the
            registered consumer one layer at a time inside the backward (IGA); ``"factor"`` — per-domain gradients
            of every LoRA ``A``/``B`` (and plain Linear weight/bias), summed across micro-batches and read with
            :meth:`factor_grads` (gradient-side baselines).
        targets: ``"lora"`` or a list of module names (see :func:`discover_layers`).
        allow_dropout: in ``full`` space, accept ``lora_dropout > 0`` (with a warning) although the chain identity
            ``g_A = s·BᵀG`` then no longer holds exactly.

    Attributes:
        layers: the captured layers (:class:`CapturedLayer`).
        uncovered_parameters: ``(name, param)`` of trainable parameters whose per-domain gradients are not
            captured (norms, embeddings, LoRA biases in full space, ...); optimizers give them the mean gradient.

    Memory: without accumulation, ``full`` space holds one layer's (K, m, n) tensor at a time — about
    ``4·K·m·n`` bytes for the largest layer plus what the consumer allocates. With gradient accumulation the
    per-domain sums of every layer live until the sync micro-batch: ``4·K·Σ_ℓ m_ℓ n_ℓ`` bytes. ``factor`` space
    holds ``4·K·Σ_ℓ r(m_ℓ + n_ℓ)`` bytes.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> cap = DomainGradCapture(net)
        >>> x, dom = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
        >>> with cap.domains(dom, num_domains=2):
        ...     net(x).pow(2).sum(1).view(2, 2).mean(1).mean().backward()   # L = mean_k L_k
        >>> cap.layers[0].domain_grads.shape
        torch.Size([2, 2, 3])
        >>> torch.allclose(cap.layers[0].domain_grads.mean(0), net.weight.grad)
        True
        >>> cap.detach()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        space: CaptureSpace = "full",
        targets: str | Sequence[str] = "lora",
        allow_dropout: bool = False,
    ) -> None:
        if space not in CAPTURE_SPACES:
            raise ValueError(f"space must be one of {CAPTURE_SPACES}, got {space!r}")
        self.model, self.space = model, space
        self.layers: list[CapturedLayer] = discover_layers(model, targets)
        if not self.layers:
            raise ValueError(
                "no LoRA layers found in model (and no trainable nn.Linear): nothing to capture. Wrap the model with "
                "peft.get_peft_model(model, LoraConfig(target_modules=...)) on Linear layers"
            )
        self._check_not_shared(model)
        if space == "full":
            self._check_dropout(allow_dropout)
        self._consumer: Consumer | None = None
        self._buffer: Buffer | None = None
        self._reducer: Reducer | None = None
        self._ctx: _Context | None = None
        self._acc_domains: int | None = None
        self._factor: dict[nn.Parameter, Tensor] = {}
        self._handles: list[Any] = []
        self._attach()
        if space == "full":
            captured = {id(p) for layer in self.layers for p in layer.parameters()}
        else:
            captured = {id(p) for t in self._factor_targets() for p in (t.weight, t.bias) if p is not None}
        self.uncovered_parameters: list[tuple[str, nn.Parameter]] = [
            (n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in captured
        ]

    # ------------------------------------------------------------------ set-up
    def _check_not_shared(self, model: nn.Module) -> None:
        uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
        for layer in self.layers:
            for p in layer.parameters():
                if uses[id(p)] > 1:
                    raise ValueError(
                        f"a trainable parameter of {layer.name!r} is shared with another module (tied weights); "
                        "hooks on one module would miss the gradient of the other uses. Untie or freeze it"
                    )

    def _check_dropout(self, allow_dropout: bool) -> None:
        dropped = [
            (layer.name, float(layer.module.lora_dropout[layer.adapter].p))
            for layer in self.layers
            if layer.is_lora
            and isinstance(layer.module.lora_dropout[layer.adapter], nn.Dropout)
            and layer.module.lora_dropout[layer.adapter].p > 0
        ]
        if not dropped:
            return
        name, p = dropped[0]
        msg = (
            f"lora_dropout={p} on {name!r} (and {len(dropped) - 1} more layers): in full space the LoRA factor "
            "gradients are rebuilt from G = Σ δ xᵀ with the chain identity g_A = s·BᵀG, g_B = s·G·Aᵀ, which needs "
            "the undropped input; A actually sees dropout(x). Set lora_dropout=0 for IGA"
        )
        if not allow_dropout:
            raise ValueError(msg + " (or pass allow_dropout=True to accept the approximation)")
        warnings.warn(msg + "; continuing because allow_dropout=True", stacklevel=3)

    def _attach(self) -> None:
        if self.space == "full":
            for layer in self.layers:
                hook = partial(self._forward_hook, self._full_grad_hook, layer)
                self._handles.append(layer.module.register_forward_hook(hook))
            return
        for target in self._factor_targets():
            hook = partial(self._forward_hook, self._factor_grad_hook, target)
            self._handles.append(target.module.register_forward_hook(hook))

    def _factor_targets(self) -> Iterator[_FactorTarget]:
        for layer in self.layers:
            if layer.is_lora:
                mod_a, mod_b = layer.module.lora_A[layer.adapter], layer.module.lora_B[layer.adapter]
                b_bias = mod_b.bias if mod_b.bias is not None and mod_b.bias.requires_grad else None
                yield _FactorTarget(f"{layer.name}.lora_A", mod_a, mod_a.weight, None)
                yield _FactorTarget(f"{layer.name}.lora_B", mod_b, mod_b.weight, b_bias)
            else:
                assert layer.weight is not None
                yield _FactorTarget(layer.name, layer.module, layer.weight, layer.bias)

    # ------------------------------------------------------------------ public API
    @property
    def consumer(self) -> Consumer | None:
        """The callable that receives ``(layer, domain_grads)`` per layer at the sync backward (full space)."""
        return self._consumer

    def set_consumer(self, consumer: Consumer | None, *, buffer: Buffer | None = None) -> None:
        """Register the per-layer consumer (one at a time), or ``None`` to store on ``layer.domain_grads``.

        ``buffer(layer, (K, m, n), dtype, device)``, optional, tells the capture where to write a layer's complete
        per-domain sums: a tensor of exactly that shape, dtype and device (its contents are overwritten), or None
        for a fresh one. The consumer then receives that tensor. IGA's batched path hands out slots of a stack of
        same-shape layers this way, so that the stack is filled without a copy. It is asked only when the sums are
        not already held in an accumulation buffer (the sync micro-batch of an accumulation step passes that
        buffer instead).
        """
        if self.space != "full":
            raise ValueError("a consumer receives full-space gradients; this capture has space='factor'")
        if consumer is not None and self._consumer is not None:
            raise ValueError(
                "this capture already has a consumer (e.g. an IGAOptimizer); build a new capture"
            )
        if buffer is not None and consumer is None:
            raise ValueError("a buffer is only used together with a consumer")
        self._consumer = consumer
        self._buffer = buffer

    @property
    def reducer(self) -> Reducer | None:
        """The in-place cross-process reduction applied to each layer's complete per-domain sums (full space)."""
        return self._reducer

    def set_reducer(self, reducer: Reducer | None) -> None:
        """Reduce each layer's complete per-domain sums across processes before the consumer sees them.

        ``reducer([grads, bias_grads?])`` must reduce the tensors in place, e.g.
        :func:`iga.distributed.all_reduce_mean` for IGA's ``stats_scope="global"``. It runs inside the backward,
        once per layer in backward order, which is the same on every rank of a data-parallel job. ``None`` turns
        it off.
        """
        if self.space != "full":
            raise ValueError(
                "set_reducer acts on full-space sums inside the backward; in factor space reduce "
                "factor_grads() before using them"
            )
        self._reducer = reducer

    @contextmanager
    def domains(
        self, domain_ids: Tensor, *, num_domains: int, sync: bool = True, position_ids: Tensor | None = None
    ) -> Iterator[DomainGradCapture]:
        """Attribute the rows of the batch run (forward AND backward) inside this block to domains.

        Args:
            domain_ids: (B,) integer domain of each row, values ``0..num_domains-1``; domain-major order is the
                fast path but not required.
            num_domains: K (every domain must have at least one row).
            sync: False for all but the last micro-batch of a gradient-accumulation step: the per-domain sums are
                kept and added to; True hands each layer's complete sums to the consumer inside the backward.
            position_ids: optional (B, T); rows that pack several sequences are refused.
        """
        if not self._handles:
            raise RuntimeError("this DomainGradCapture was detached; build a new one")
        if self._ctx is not None:
            raise RuntimeError("capture.domains(...) blocks cannot be nested")
        partition = DomainPartition.from_ids(domain_ids, num_domains)
        if position_ids is not None:
            check_not_packed(position_ids, partition.batch_size)
        if self._acc_domains is not None and self._acc_domains != num_domains:
            raise ValueError(
                f"num_domains={num_domains} differs from the {self._acc_domains} of the micro-batches accumulated "
                "so far; finish the accumulation step (sync=True) or call reset()"
            )
        self._ctx = _Context(partition, sync)
        try:
            yield self
        except BaseException:
            self._clear_accumulation()
            raise
        finally:
            self._ctx = None
        if sync and self.space == "full":
            # The accumulation step ends here; sums of a layer unused by the sync micro-batch must not leak into
            # the next step.
            self._clear_accumulation()

    def factor_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of every parameter captured in factor space, in a fixed order (the layers' order;
        per layer ``lora_A``, ``lora_B`` and a trainable ``lora_B`` bias, or a plain Linear's weight and bias).
        Names are ``"<layer>.lora_A"``, ``"<layer>.lora_B"``, ``"<layer>.lora_B.bias"``, ``"<layer>"`` and
        ``"<layer>.bias"``. The same on every rank of a data-parallel job."""
        if self.space != "factor":
            raise ValueError("factor_parameters() needs space='factor'; this capture has space='full'")
        out: list[tuple[str, nn.Parameter]] = []
        for target in self._factor_targets():
            out.append((target.name, target.weight))
            if target.bias is not None:
                out.append((f"{target.name}.bias", target.bias))
        return out

    def factor_grads(self) -> dict[nn.Parameter, Tensor]:
        """Per-domain gradients (K, *param.shape) of every captured parameter, summed across micro-batches."""
        if self.space != "factor":
            raise ValueError("factor_grads() needs space='factor'; this capture has space='full'")
        return dict(self._factor)

    def reset(self) -> None:
        """Drop factor-space sums, accumulation buffers and stored ``domain_grads``."""
        self._factor.clear()
        self._clear_accumulation()
        for layer in self.layers:
            layer.domain_grads = layer.bias_domain_grads = None

    def detach(self) -> None:
        """Remove every hook (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._consumer = None
        self._buffer = None
        self._reducer = None

    def __enter__(self) -> DomainGradCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ------------------------------------------------------------------ hooks
    def _clear_accumulation(self) -> None:
        for layer in self.layers:
            layer._acc = layer._bias_acc = None
        self._acc_domains = None

    def _forward_hook(
        self, on_grad: Callable[..., None], target: Any, module: nn.Module, args: tuple, output: Any
    ):
        ctx = self._ctx
        if ctx is None or not torch.is_grad_enabled():
            return
        if not isinstance(output, Tensor) or not output.requires_grad:
            return
        if not args or not isinstance(args[0], Tensor):
            raise TypeError(
                f"DomainGradCapture: {target.name!r} must be called with its input tensor as first argument"
            )
        x, bsz = args[0], ctx.partition.batch_size
        if x.dim() < 2 or x.shape[0] != bsz or output.shape[0] != bsz:
            raise ValueError(
                f"DomainGradCapture: {target.name!r} got an input of shape {tuple(x.shape)} whose leading dimension "
                f"is not the batch size {bsz} (len(domain_ids)). Packed / padding-free batches (many sequences "
                "flattened into one row) erase the row-to-domain attribution; use padded batches (packing=False, "
                "padding_free=False)"
            )
        lora = isinstance(target, CapturedLayer) and target.is_lora
        if lora and (getattr(module, "merged", False) or getattr(module, "disable_adapters", False)):
            raise RuntimeError(
                f"LoRA layer {target.name!r} is merged or its adapters are disabled during training"
            )
        output.register_hook(partial(on_grad, target, ctx, x.detach()))

    def _check_domains(self, num_domains: int) -> None:
        # domains() refuses a different K while sums are pending; remember the K they were built with.
        if self._acc_domains is None:
            self._acc_domains = num_domains

    def _full_grad_hook(self, layer: CapturedLayer, ctx: _Context, x: Tensor, grad: Tensor) -> None:
        k = ctx.partition.num_domains
        if ctx.sync and id(layer) in ctx.dispatched:
            raise RuntimeError(
                f"{layer.name!r} received a second output gradient in one sync backward: a module called several "
                "times per forward (or two backwards in one capture.domains block) is not supported in full space"
            )
        out = None
        if ctx.sync and layer._acc is None and self._buffer is not None:
            shape = (k, grad.shape[-1], x.shape[-1])
            out = self._buffer(layer, shape, sums_dtype(grad, x), grad.device)
        grads = ctx.partition.outer(grad, x, scale=k, acc=layer._acc, out=out)
        bias_grads = None if layer.bias is None else ctx.partition.rowsum(grad, scale=k, acc=layer._bias_acc)
        if not ctx.sync:
            self._check_domains(k)
            layer._acc, layer._bias_acc = grads, bias_grads
            return
        ctx.dispatched.add(id(layer))
        layer._acc = layer._bias_acc = None
        self._dispatch(layer, grads, bias_grads)

    def _dispatch(self, layer: CapturedLayer, grads: Tensor, bias_grads: Tensor | None) -> None:
        # The one place where a layer's per-domain sums are complete (all micro-batches), hence where a
        # cross-process reduction (IGA's stats_scope="global") must happen: before any statistic is built.
        if self._reducer is not None:
            self._reducer([grads] if bias_grads is None else [grads, bias_grads])
        if self._consumer is None:
            layer.domain_grads, layer.bias_domain_grads = grads, bias_grads
            return
        layer.bias_domain_grads = bias_grads
        try:
            self._consumer(layer, grads)
        finally:
            layer.bias_domain_grads = None

    def _factor_grad_hook(self, target: _FactorTarget, ctx: _Context, x: Tensor, grad: Tensor) -> None:
        k = ctx.partition.num_domains
        self._check_domains(k)
        self._factor[target.weight] = ctx.partition.outer(
            grad, x, scale=k, acc=self._factor.get(target.weight)
        )
        if target.bias is not None:
            self._factor[target.bias] = ctx.partition.rowsum(grad, scale=k, acc=self._factor.get(target.bias))
