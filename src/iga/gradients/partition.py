"""Row-to-domain attribution of a batch, and the per-domain sums that the capture hooks compute.

A batch row belongs to exactly one domain (``domain_ids[i]``). For a linear map ``y = x Wᵀ`` applied to every
token of every row, the gradient of the loss with respect to ``W`` splits exactly by domain:

    G_k = Σ_{rows i of domain k} Σ_t δ_{i,t} x_{i,t}ᵀ,      Σ_k G_k = ∂L/∂W,

so the per-domain pieces cost one matmul per domain (or one ``bmm`` when the batch is domain-major with equal
group sizes) and never a second backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Results with at most this many columns (and fewer columns than rows) are computed transposed, see outer().
_NARROW = 32


@dataclass(frozen=True, eq=False)
class DomainPartition:
    """How the rows of one batch split into ``num_domains`` domains.

    Build it with :meth:`from_ids`. Domain-major batches (rows sorted by domain) are attributed by contiguous
    slices (views, no copy); equal-sized sorted groups additionally take a single ``bmm``.

    Example:
        >>> import torch
        >>> p = DomainPartition.from_ids(torch.tensor([0, 0, 1, 1]), num_domains=2)
        >>> p.counts, p.equal_sorted
        ((2, 2), True)
    """

    num_domains: int
    batch_size: int
    domain_ids: Tensor
    counts: tuple[int, ...]
    # Contiguous row ranges per domain when the batch is domain-major, else None.
    slices: tuple[slice, ...] | None
    # Row indices per domain when the batch is not sorted, else None.
    index: tuple[Tensor, ...] | None

    @classmethod
    def from_ids(cls, domain_ids: Tensor, num_domains: int) -> DomainPartition:
        """Validate ``domain_ids`` (shape (B,), integer values in ``0..num_domains-1``, every domain present)."""
        if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < 2:
            raise ValueError(f"num_domains must be an int >= 2, got {num_domains!r}")
        if not isinstance(domain_ids, Tensor):
            raise TypeError(
                f"domain_ids must be a torch.Tensor of shape (batch,), got {type(domain_ids).__name__}"
            )
        if domain_ids.dim() != 1:
            raise ValueError(f"domain_ids must have shape (batch,), got shape {tuple(domain_ids.shape)}")
        if (
            domain_ids.dtype.is_floating_point
            or domain_ids.dtype.is_complex
            or domain_ids.dtype == torch.bool
        ):
            raise TypeError(f"domain_ids must be an integer tensor (torch.long), got {domain_ids.dtype}")
        ids = domain_ids.long()
        # One host sync per batch: the hooks need the group sizes as Python ints.
        counts = torch.bincount(ids.clamp(min=0), minlength=num_domains).tolist()
        lo, hi = (int(v) for v in torch.aminmax(ids)) if ids.numel() else (0, -1)
        if ids.numel() == 0 or lo < 0 or hi >= num_domains:
            raise ValueError(
                f"domain_ids must hold values in 0..{num_domains - 1} (num_domains={num_domains}); "
                f"got values in {lo}..{hi}"
            )
        missing = [k for k, c in enumerate(counts) if c == 0]
        if missing:
            raise ValueError(
                f"domain(s) {missing} have no rows in this batch; every one of the {num_domains} domains needs at "
                "least one row (batches hold complete isomer sets)"
            )
        is_sorted = bool((ids[1:] >= ids[:-1]).all()) if ids.numel() > 1 else True
        slices: tuple[slice, ...] | None = None
        index: tuple[Tensor, ...] | None = None
        if is_sorted:
            starts = [0]
            for c in counts[:-1]:
                starts.append(starts[-1] + c)
            slices = tuple(slice(s, s + c) for s, c in zip(starts, counts, strict=True))
        else:
            index = tuple(torch.nonzero(ids == k).flatten() for k in range(num_domains))
        return cls(num_domains, int(ids.numel()), ids, tuple(counts), slices, index)

    @property
    def equal_sorted(self) -> bool:
        """True when rows are domain-major and every domain has the same number of rows (the ``bmm`` path)."""
        return self.slices is not None and len(set(self.counts)) == 1

    def _rows(self, t: Tensor, k: int) -> Tensor:
        if self.slices is not None:
            return t[self.slices[k]]
        assert self.index is not None
        return t.index_select(0, self.index[k])

    def outer(
        self,
        grad_out: Tensor,
        inputs: Tensor,
        *,
        scale: float,
        acc: Tensor | None = None,
        out: Tensor | None = None,
    ) -> Tensor:
        """Per-domain ``scale · Σ_{rows of k, tokens} δ xᵀ`` as a (K, m, n) tensor, added into ``acc`` if given.

        ``grad_out`` is (B, ..., m) and ``inputs`` (B, ..., n) with the same middle dims. The result is in at
        least fp32 (float64 stays float64), see :func:`sums_dtype`. ``out`` (only without ``acc``): a
        (K, m, n) tensor of that dtype to write the sums into instead of a fresh one (its contents are ignored);
        IGA's batched path passes a slot of its stack of same-shape layers, so that no copy is needed.
        """
        m, n, bsz, k_dom = grad_out.shape[-1], inputs.shape[-1], self.batch_size, self.num_domains
        dtype = sums_dtype(grad_out, inputs)
        if out is not None:
            if acc is not None:
                raise ValueError("outer: pass acc (add into the running sums) or out (write here), not both")
            if out.shape != (k_dom, m, n) or out.dtype != dtype or out.device != grad_out.device:
                raise ValueError(
                    f"outer: out must be a ({k_dom}, {m}, {n}) {dtype} tensor on {grad_out.device}, got "
                    f"{tuple(out.shape)} {out.dtype} on {out.device}"
                )
        g = grad_out.reshape(bsz, -1, m)
        x = inputs.reshape(bsz, -1, n)
        # A narrow result (a LoRA factor's n = r columns) is computed as its transpose xᵀδ, (K, n, m), and returned
        # as a transposed view: CPU BLAS was measured 4.5× slower for (344 × 256)·(256 × 8) than for the transposed
        # product (0.40 vs 0.09 ms). Accumulation buffers made that way keep the layout.
        narrow = out is None and n < m and n <= _NARROW
        if self.equal_sorted:
            gk = g.reshape(k_dom, -1, m).to(dtype)
            xk = x.reshape(k_dom, -1, n).to(dtype)
            if narrow:
                if acc is None:
                    empty = torch.empty((k_dom, n, m), dtype=dtype, device=grad_out.device)
                    return torch.baddbmm(empty, xk.transpose(1, 2), gk, beta=0, alpha=scale).mT
                acc.mT.baddbmm_(xk.transpose(1, 2), gk, alpha=scale)
                return acc
            if acc is None:
                # beta=0 ignores the (uninitialised) input; alpha folds the scale into the matmul.
                if out is not None:
                    return out.baddbmm_(gk.transpose(1, 2), xk, beta=0, alpha=scale)
                empty = torch.empty((k_dom, m, n), dtype=dtype, device=grad_out.device)
                return torch.baddbmm(empty, gk.transpose(1, 2), xk, beta=0, alpha=scale)
            return acc.baddbmm_(gk.transpose(1, 2), xk, alpha=scale)
        if acc is not None:
            out = acc
        elif out is not None:
            out = out.zero_()
        elif narrow:
            out = torch.zeros((k_dom, n, m), dtype=dtype, device=grad_out.device).mT
        else:
            out = torch.zeros((k_dom, m, n), dtype=dtype, device=grad_out.device)
        for k in range(k_dom):
            gk = self._rows(g, k).reshape(-1, m).to(dtype)
            xk = self._rows(x, k).reshape(-1, n).to(dtype)
            if narrow:
                out[k].mT.addmm_(xk.T, gk, alpha=scale)
            else:
                out[k].addmm_(gk.T, xk, alpha=scale)
        return out

    def rowsum(self, grad_out: Tensor, *, scale: float, acc: Tensor | None = None) -> Tensor:
        """Per-domain ``scale · Σ δ`` (the bias gradient pieces) as (K, m), added into ``acc`` if given."""
        m = grad_out.shape[-1]
        dtype = torch.promote_types(grad_out.dtype, torch.float32)
        per_row = grad_out.reshape(self.batch_size, -1, m).to(dtype).sum(1)
        out = (
            acc
            if acc is not None
            else torch.zeros((self.num_domains, m), dtype=dtype, device=grad_out.device)
        )
        return out.index_add_(0, self.domain_ids.to(out.device), per_row, alpha=scale)


def sums_dtype(grad_out: Tensor, inputs: Tensor) -> torch.dtype:
    """The dtype of the per-domain sums of ``grad_out`` and ``inputs``: at least fp32 (float64 stays float64)."""
    return torch.promote_types(torch.promote_types(grad_out.dtype, inputs.dtype), torch.float32)


def check_not_packed(position_ids: Tensor, batch_size: int) -> None:
    """Refuse packed rows: a row whose position ids count up from 0, restart at 0 and count up again.

    Left padding (positions ``1, 1, 0, 1, 2``) and padding filled with zeros on either side pass; a packed row
    (``0, 1, 2, 0, 1``) does not.
    """
    pos = position_ids if position_ids.dim() == 2 else position_ids.reshape(-1, position_ids.shape[-1])
    if pos.shape[0] != batch_size:
        raise ValueError(
            f"position_ids has {pos.shape[0]} rows but the batch has {batch_size} (len(domain_ids)): packed / "
            "padding-free batches erase the row-to-domain attribution; use padded batches (packing=False)"
        )
    if pos.shape[1] < 3:
        return
    zero = pos == 0
    seen_zero_before = torch.cumsum(zero.long(), dim=1)[:, :-2] > 0
    restart = zero[:, 1:-1] & (pos[:, :-2] > 0) & (pos[:, 2:] == 1) & seen_zero_before
    if bool(restart.any()):
        row = int(torch.nonzero(restart.any(dim=1))[0])
        raise ValueError(
            f"row {row} of position_ids restarts at 0 inside the row, i.e. several sequences are packed into one "
            "row; packing erases the row-to-domain attribution that per-domain gradients need. Use padded "
            "batches (packing=False, padding_free=False)"
        )
