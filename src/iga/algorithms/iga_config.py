"""Hyper-parameters of IGA (every option of docs/method.md §3), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iga.algorithms.lora_map import LORA_MAPS
from iga.algorithms.mask import GROUPED_SPACES, MASK_STATS, VARIANCE_NORMS
from iga.algorithms.projection import DEFAULT_EXACT_MAX_NUMEL
from iga.distributed import STATS_SCOPES, check_stats_scope

MASK_SPACES = ("coordinate", "factor", *GROUPED_SPACES, "subspace")
STAT_TOKENS = ("all", "logic")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class IGAConfig:
    """IGA options. The defaults are the design of record, with one change chosen by training-domain validation:
    ``mask_stat="sign"`` (docs/method.md §3.1; ``mask_stat="variance"`` is the paper's statistic).

    Attributes:
        tau: mask temperature τ ≥ 0 in ``M = exp(−τ·V̂)``; 0 reproduces ERM.
        tau_warmup_steps: linear warm-up of τ: ``τ_t = τ·min(1, t / tau_warmup_steps)`` at optimizer step t
            (0-based); 0 = no warm-up.
        variance_norm: ``"relative"`` ``V/(Ḡ²+V+ε)`` | ``"layer"`` ``V/(mean V+ε)`` | ``"none"``
            (``mask_stat="variance"`` only).
        ema_beta: EMA factor β ∈ [0, 1) over optimizer steps for ``V`` and ``Ḡ²`` (bias-corrected like Adam;
            ``mask_stat="variance"`` only); 0 = off. Costs ``2·Σ_ℓ m_ℓ n_ℓ`` fp32 of persistent state.
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
            ``"row"`` / ``"column"`` / ``"layer"``: one statistic per output unit, per input unit, or per layer
            (a soft per-layer gate): ``V`` and ``Ḡ²`` (or the sign disagreement) are averaged over the
            coordinates that share it before ``V̂`` and the mask, which then multiplies those coordinates of
            ``Ḡ``; projection and map as for ``coordinate``. A bias gets one value per entry under ``row`` and one
            for the whole vector under ``column`` and ``layer``.
            ``"subspace"``: agreement per LoRA direction, not per weight. ``Ḡ``'s top-r singular directions
            ``(u_i, v_i)`` (r from ``svd_rank``; exact or randomized SVD as for the projection) and each domain's
            coefficient on them, ``c_ki = u_iᵀ G_k v_i`` (whose mean over k is the singular value ``s_i``); the
            statistic and mask act on those r numbers per domain, and ``G̃ = Σ_i M_i s_i u_i v_iᵀ`` (already rank
            r: nothing more is projected). Needs a rank (``svd_rank`` not None) and takes no EMA. Biases and plain
            Linear layers without a rank are masked per coordinate.
            Every space but ``factor`` uses the full-space capture.
        mask_stat: the disagreement statistic. ``"sign"`` (the default): ``V̂ = 1 − |mean_k sign(G_k)|``, the
            share of domains that disagree in sign (SAND-mask's statistic inside IGA's ``exp(−τ·)``);
            ``variance_norm`` is not used and ``ema_beta`` is refused (there is no ``V`` to smooth: use
            ``domain_ema_beta``). Chosen by training-domain validation on the micro regime (docs/results.md §8:
            more cue-free in-domain accuracy than ``"variance"``, paired over 5 seeds, and the same held-out
            accuracy). ``"variance"`` (the paper's): ``V̂`` from the variance over domains, per ``variance_norm``.
        stat_tokens: which target tokens the per-domain gradients behind the statistics come from. ``"all"``
            (the design of record): the training loss's. ``"logic"``: only the tokens that every rendering of the
            isomer set shares at the same place in its target (numbers, operators, the chain of thought's own
            words; not the domains' slot words; :func:`iga.training.data.aligned_labels`), so that wording tokens
            do not enter ``V``; the update is still the full loss's mean gradient. The trainer appends a relabelled
            copy of every row (2.5x ERM's step in docs/results.md §8) and needs renderings whose targets have
            one length (the micro regime's word-level tokenizer). With a hand-driven capture: domain ids K..2K−1
            are the relabelled rows, ``num_domains=2K``, the backward is of the mean of all 2K losses, the
            optimizer's ``num_domains`` is K, and every trainable parameter must sit in a captured layer.
        layer_group_size: the coordinate space only (``mask_space="coordinate"``, ``stat_tokens="all"``, and
            for ``mask_stat="sign"`` no ``domain_ema_beta``; the other variants run one layer at a time). Layers of the same shape and rank are
            stacked, up to this many, and their statistics, mask, projection and map run as batched kernels (the
            same numbers as one layer at a time, to float tolerance; far fewer kernel launches on small layers).
            1 = one layer at a time.
        layer_group_max_bytes: bound on the stacks' buffers (see :mod:`iga.gradients.grouping`): the open
            stacks of per-domain blocks ``(K, m, n)`` and the processed ones kept for reuse by the next step (a
            fresh multi-MiB CPU buffer costs page faults) hold at most this many bytes together; a layer whose
            block exceeds half of it is processed alone, as with ``layer_group_size=1``. The extra memory is then
            this bound plus one stack's working buffers (≈ 3 m·n fp32 per stacked layer), whatever the number of
            layers. Measured on the ``default`` benchmark preset (8 MiB): +9.5 MiB peak within a step over ERM,
            +4.1 MiB one layer at a time, plus the ≤ 8 MiB kept between steps.
    """

    #: The allowed values of the options that take one of a few (``iga algorithms show iga`` lists them).
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "variance_norm": VARIANCE_NORMS,
        "lora_map": LORA_MAPS,
        "stats_scope": STATS_SCOPES,
        "mask_space": MASK_SPACES,
        "mask_stat": MASK_STATS,
        "stat_tokens": STAT_TOKENS,
    }

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
    mask_stat: str = "sign"
    stat_tokens: str = "all"
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
        if self.mask_stat not in MASK_STATS:
            raise ValueError(f"IGAConfig.mask_stat must be one of {MASK_STATS}, got {self.mask_stat!r}")
        if self.mask_stat == "sign" and self.ema_beta > 0:
            raise ValueError(
                f"IGAConfig.ema_beta must be 0 with mask_stat='sign' (it smooths V and Ḡ², which the sign statistic "
                f"does not use; domain_ema_beta averages the gradients themselves), got {self.ema_beta!r}"
            )
        if self.stat_tokens not in STAT_TOKENS:
            raise ValueError(f"IGAConfig.stat_tokens must be one of {STAT_TOKENS}, got {self.stat_tokens!r}")
        if self.mask_space == "subspace":
            if self.svd_rank is None:
                raise ValueError(
                    "IGAConfig.svd_rank must be 'lora' or a positive int with mask_space='subspace' (the rank of the "
                    "subspace whose directions are masked), got None"
                )
            for name in ("ema_beta", "domain_ema_beta"):
                if getattr(self, name) > 0:
                    raise ValueError(
                        f"IGAConfig.{name} must be 0 with mask_space='subspace' (its directions change every step, "
                        f"so there is no fixed coordinate to average over steps), got {getattr(self, name)!r}"
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
