"""Small ``torch.distributed`` helpers for the gradient-rewriting optimizers and the trainer.

Every helper is a no-op (or returns the single-process answer) when no process group is initialised or the world
has one process, so the same code runs on one CPU, one GPU and under DDP. Collectives act on tensors where they
are (no device strings here): under NCCL they are CUDA tensors, under gloo CPU tensors.

Every rank must call a collective helper at the same point, with tensors of the same shapes and dtypes in the
same order; the callers guarantee this by iterating over the optimizer's parameter groups or the capture's
layers, which are identical on every rank.

Example:
    >>> import torch
    >>> t = torch.tensor([1.0, 3.0])
    >>> all_reduce_mean([t]); t          # one process: unchanged
    tensor([1., 3.])
    >>> world_size(), is_distributed()
    (1, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

STATS_SCOPES = ("local", "global")

# Accelerate's DistributedType values that shard parameters or weights across ranks, and why per-domain hooks
# cannot work there. Every other type (MULTI_CPU, MULTI_GPU, MULTI_XPU, ...) is plain data parallelism.
_SHARDED = {
    "FSDP": "FSDP shards the LoRA factors and the frozen base weights across ranks, so a hook on a LoRA layer "
    "sees only a flat shard of each weight and the per-domain gradients G_k = Σ δ xᵀ cannot be mapped back to "
    "whole LoRA factors",
    "DEEPSPEED": "DeepSpeed owns the gradients (ZeRO partitions them from stage 2, parameters at stage 3) and "
    "reduces them in its own engine, so the rewritten factor gradients would not be the ones it steps with; "
    "no DeepSpeed stage has been tested here",
    "MEGATRON_LM": "Megatron-LM tensor parallelism splits every weight matrix across ranks, so no rank sees a "
    "whole layer's gradient",
}


def world_size() -> int:
    """Number of processes of the default group (1 when no process group is initialised)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one process."""
    return world_size() > 1


def all_reduce_mean(tensors: Sequence[Tensor]) -> None:
    """Average each tensor over all ranks, in place (a no-op in one process).

    Tensors are coalesced into one flat buffer per (device, dtype) so that many small LoRA tensors cost one
    collective; a single contiguous tensor (a layer's (K, m, n) per-domain sums) is reduced where it lies, without
    a copy.
    """
    if not tensors or not is_distributed():
        return
    import torch
    import torch.distributed as dist

    n = world_size()
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for group in groups.values():
        if len(group) == 1 and group[0].is_contiguous():
            dist.all_reduce(group[0])
            group[0].div_(n)
            continue
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat.div_(n)
        for t, chunk in zip(group, flat.split([t.numel() for t in group]), strict=True):
            t.copy_(chunk.view_as(t))


def any_rank(flag: bool, like: Tensor) -> bool:
    """True if ``flag`` is True on any rank; ``like`` gives the device the backend can reduce on."""
    if not is_distributed():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=like.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_stats_scope(value: object, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``value`` is one of :data:`STATS_SCOPES`."""
    if value not in STATS_SCOPES:
        raise ValueError(f"{owner} must be one of {STATS_SCOPES}, got {value!r}")


def check_launch(num_processes: int, *, cpu: bool) -> None:
    """Refuse a multi-process launch that Accelerate sees as one process (each rank would train alone).

    ``torchrun --nproc_per_node N`` sets ``WORLD_SIZE=N``; on a machine without GPUs a plain ``Accelerator()``
    then reports one process per rank and every rank trains, checkpoints and writes results on its own.

    Example:
        >>> check_launch(2, cpu=True)   # WORLD_SIZE unset or 2: nothing to refuse
    """
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and num_processes != launched:
        hint = " On a machine without GPUs set `cpu: true` (`--set cpu=true`)." if not cpu else ""
        raise ValueError(
            f"launched with WORLD_SIZE={launched} processes but Accelerate sees {num_processes}: every process "
            f"would train on its own and overwrite the others' results.{hint} See "
            "configs/accelerate/ddp_cpu.yaml and ddp_gpu.yaml for working launch commands"
        )


def check_distributed_type(distributed_type: str, *, algorithm: str, capture_space: str | None) -> None:
    """Refuse parameter-sharding back-ends for methods that rewrite gradients from per-domain captures.

    Args:
        distributed_type: Accelerate's ``accelerator.distributed_type`` (the enum or its value, e.g. ``"FSDP"``).
        algorithm: the method's name (for the message).
        capture_space: the method's ``capture_space`` (``None`` = loss-side method, never refused here).

    Example:
        >>> check_distributed_type("MULTI_GPU", algorithm="iga", capture_space="full")   # DDP: fine
        >>> check_distributed_type("FSDP", algorithm="iga", capture_space="full")
        Traceback (most recent call last):
        ...
        ValueError: algorithm 'iga' cannot run under FSDP: FSDP shards ...
    """
    kind = str(getattr(distributed_type, "value", distributed_type)).upper()
    if capture_space is None or kind not in _SHARDED:
        return
    raise ValueError(
        f"algorithm {algorithm!r} cannot run under {kind}: {_SHARDED[kind]}. It rewrites gradients from per-domain "
        f"{capture_space}-space captures, which needs every rank to hold whole layers: use plain data parallelism "
        "(DDP: `accelerate launch --multi_gpu`, see configs/accelerate/ddp_gpu.yaml)"
    )
