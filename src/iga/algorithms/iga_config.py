"""Hyper-parameters of IGA (every option of docs/method.md §3), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from iga.algorithms.lora_map import LORA_MAPS
from iga.algorithms.mask import VARIANCE_NORMS
from iga.algorithms.projection import DEFAULT_EXACT_MAX_NUMEL
from iga.distributed import check_stats_scope

MASK_SPACES = ("coordinate", "factor")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class IGAConfig:
    """IGA options (defaults are the design of record).

    Attributes:
        tau: mask temperature τ ≥ 0 in ``M = exp(−τ·V̂)``; 0 reproduces ERM.
        tau_warmup_steps: linear warm-up of τ: ``τ_t = τ·min(1, t / tau_warmup_steps)`` at optimizer step t
            (0-based); 0 = no warm-up.
        variance_norm: ``"relative"`` ``V/(Ḡ²+V+ε)`` | ``"layer"`` ``V/(mean V+ε)`` | ``"none"``.
        ema_beta: EMA factor β ∈ [0, 1) over optimizer steps for ``V`` and ``Ḡ²`` (bias-corrected like Adam);
            0 = off. Costs ``2·Σ_ℓ m_ℓ n_ℓ`` fp32 of persistent state.
        domain_ema_beta: EMA factor β ∈ [0, 1) over optimizer steps for each domain's gradient ``G_k`` itself
            (bias-corrected); ``Ḡ``, ``V`` and the mask are then computed from the averaged ``G_k``, while the mask
            still multiplies this step's ``Ḡ`` (so τ = 0 stays ERM). Unlike ``ema_beta``, which averages ``V`` and
            ``Ḡ²`` and so keeps their sampling-noise floor, this averages the noise out of the ``G_k`` before any
            statistic. 0 = off. Costs ``K·Σ_ℓ m_ℓ n_ℓ`` fp32 of persistent state.
        rescale: rescale ``G̃`` so that ``‖G̃‖ = ‖Ḡ‖`` per layer.
        svd_rank: rank of the truncated SVD of ``G̃``: ``"lora"`` = the layer's LoRA rank, an int, or None (skip).
            Plain (non-LoRA) Linear layers are never projected.
        svd_exact_max_numel: exact ``torch.linalg.svd`` up to this many entries, randomized SVD (q = r + 8,
            2 power iterations, seeded) above.
        svd_seed: seed of the randomized SVD; the generator is re-seeded from (seed, step, layer), so a resumed run
            draws the same projections.
        lora_map: ``"chain"`` | ``"lora_pro"``.
        damping: ``pinv(M + damping·I)`` for the ``lora_pro`` inverses of ``BᵀB`` and ``AAᵀ``.
        eps: ε of the variance normalisations and of ``rescale``.
        max_grad_norm: clip the total gradient norm to this value AFTER the rewrite (None = off). Turn the
            trainer's own clipping off: it would clip the unmasked mean gradient before the rewrite.
        stats_scope: under data parallelism (DDP), ``"local"`` — each rank builds ``Ḡ, V``, the mask and the
            projection from its own complete isomer sets and only the resulting LoRA-factor gradients are averaged
            (LoRA-sized traffic); ``"global"`` — each layer's per-domain sums ``G_k`` are averaged over the ranks
            inside the backward before any statistic (exactly one process on the global batch; K× full-layer
            traffic). Identical in one process.
        mask_space: where the mask acts. ``"coordinate"`` (the design of record): on the coordinates of each
            adapted weight ``W``, from the per-domain full-matrix gradients ``G_k`` (one extra weight-gradient
            GEMM per adapted layer, then the rank-r projection and the map back to ``A``, ``B``). ``"factor"``:
            on the coordinates of the LoRA factors themselves, from the per-domain factor gradients
            ``∂L_k/∂A``, ``∂L_k/∂B`` (a ``DomainGradCapture(space="factor")``, LoRA-sized, no full-weight GEMM, no
            SVD); ``M ⊙ mean_k ∂L_k/∂A`` is written to ``A``'s gradient directly, likewise for ``B`` (and
            trainable LoRA biases). The cheap path: its cost is that of the factor capture. It is a different
            method, not an approximation: a factor coordinate mixes many weight coordinates. ``svd_rank`` (an
            int) and ``lora_map="lora_pro"`` have no meaning there and are refused; ``layer`` normalisation and
            ``rescale`` act per factor tensor.
        layer_group_size: ``mask_space="coordinate"`` only. Layers of the same shape and rank are stacked, up to
            this many, and their statistics, mask, projection and map run as batched kernels (the same numbers
            as one layer at a time, to float tolerance; far fewer kernel launches on small layers). 1 = one layer
            at a time.
        layer_group_max_bytes: bound on the stacks' buffers (see :mod:`iga.gradients.grouping`): the open
            stacks of per-domain blocks ``(K, m, n)`` and the processed ones kept for reuse by the next step (a
            fresh multi-MiB CPU buffer costs page faults) hold at most this many bytes together; a layer whose
            block exceeds half of it is processed alone, as with ``layer_group_size=1``. The extra memory is then
            this bound plus one stack's working buffers (≈ 3 m·n fp32 per stacked layer), whatever the number of
            layers. Measured on the ``default`` benchmark preset (8 MiB): +9.5 MiB peak within a step over ERM,
            +4.1 MiB one layer at a time, plus the ≤ 8 MiB kept between steps.
    """

    tau: float = 10.0
    tau_warmup_steps: int = 0
    variance_norm: str = "relative"
    ema_beta: float = 0.0
    domain_ema_beta: float = 0.0
    rescale: bool = False
    svd_rank: int | str | None = "lora"
    svd_exact_max_numel: int = DEFAULT_EXACT_MAX_NUMEL
    svd_seed: int = 0
    lora_map: str = "chain"
    damping: float = 1e-6
    eps: float = 1e-12
    max_grad_norm: float | None = None
    stats_scope: str = "local"
    mask_space: str = "coordinate"
    layer_group_size: int = 8
    layer_group_max_bytes: int = 8 * 2**20

    def __post_init__(self) -> None:
        if not _is_number(self.tau) or self.tau < 0:
            raise ValueError(f"IGAConfig.tau must be a number >= 0, got {self.tau!r}")
        if not _is_int(self.tau_warmup_steps) or self.tau_warmup_steps < 0:
            raise ValueError(f"IGAConfig.tau_warmup_steps must be an int >= 0, got {self.tau_warmup_steps!r}")
        if self.variance_norm not in VARIANCE_NORMS:
            raise ValueError(
                f"IGAConfig.variance_norm must be one of {VARIANCE_NORMS}, got {self.variance_norm!r}"
            )
        if not _is_number(self.ema_beta) or not 0 <= self.ema_beta < 1:
            raise ValueError(f"IGAConfig.ema_beta must be in [0, 1) (0 = off), got {self.ema_beta!r}")
        if not _is_number(self.domain_ema_beta) or not 0 <= self.domain_ema_beta < 1:
            raise ValueError(
                f"IGAConfig.domain_ema_beta must be in [0, 1) (0 = off), got {self.domain_ema_beta!r}"
            )
        if not isinstance(self.rescale, bool):
            raise ValueError(f"IGAConfig.rescale must be true or false, got {self.rescale!r}")
        if not (
            self.svd_rank is None
            or self.svd_rank == "lora"
            or (_is_int(self.svd_rank) and self.svd_rank >= 1)
        ):
            raise ValueError(
                f"IGAConfig.svd_rank must be 'lora', a positive int or None (skip), got {self.svd_rank!r}"
            )
        if not _is_int(self.svd_exact_max_numel) or self.svd_exact_max_numel < 0:
            raise ValueError(
                f"IGAConfig.svd_exact_max_numel must be an int >= 0, got {self.svd_exact_max_numel!r}"
            )
        if not _is_int(self.svd_seed):
            raise ValueError(f"IGAConfig.svd_seed must be an int, got {self.svd_seed!r}")
        if self.lora_map not in LORA_MAPS:
            raise ValueError(f"IGAConfig.lora_map must be one of {LORA_MAPS}, got {self.lora_map!r}")
        if not _is_number(self.damping) or self.damping < 0:
            raise ValueError(f"IGAConfig.damping must be a number >= 0, got {self.damping!r}")
        if not _is_number(self.eps) or self.eps <= 0:
            raise ValueError(f"IGAConfig.eps must be a number > 0, got {self.eps!r}")
        if self.max_grad_norm is not None and (not _is_number(self.max_grad_norm) or self.max_grad_norm <= 0):
            raise ValueError(
                f"IGAConfig.max_grad_norm must be a number > 0 or None (off), got {self.max_grad_norm!r}"
            )
        check_stats_scope(self.stats_scope, "IGAConfig.stats_scope")
        if self.mask_space not in MASK_SPACES:
            raise ValueError(f"IGAConfig.mask_space must be one of {MASK_SPACES}, got {self.mask_space!r}")
        if self.mask_space == "factor" and _is_int(self.svd_rank):
            raise ValueError(
                f"IGAConfig.svd_rank must be 'lora' or None with mask_space='factor' (the factor gradients are "
                f"already rank r; nothing is projected), got {self.svd_rank!r}"
            )
        if self.mask_space == "factor" and self.lora_map != "chain":
            raise ValueError(
                f"IGAConfig.lora_map must be 'chain' with mask_space='factor' (the masked factor gradients are "
                f"written directly; there is no full-matrix gradient to map), got {self.lora_map!r}"
            )
        if not _is_int(self.layer_group_size) or self.layer_group_size < 1:
            raise ValueError(
                f"IGAConfig.layer_group_size must be an int >= 1 (1 = one layer at a time), got "
                f"{self.layer_group_size!r}"
            )
        if not _is_int(self.layer_group_max_bytes) or self.layer_group_max_bytes < 0:
            raise ValueError(
                f"IGAConfig.layer_group_max_bytes must be an int >= 0, got {self.layer_group_max_bytes!r}"
            )

    def tau_at(self, step: int) -> float:
        """τ at 0-based optimizer step ``step`` (linear warm-up from 0)."""
        if self.tau_warmup_steps == 0:
            return float(self.tau)
        return float(self.tau) * min(1.0, step / self.tau_warmup_steps)
