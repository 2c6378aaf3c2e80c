"""Everything a results file records about representational consistency, in one call.

:func:`compute_lcs_report` fills an :class:`LCSReport`: the canonical LCS at the headline layer, its calibrations
(LCS_ratio, permutation baseline), the OOD drift, the alternative definitions, the per-layer curve and the
settings used, so a run can be re-scored under another definition without guessing what was done.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from iga.evaluation._arrays import as_labels, as_matrix, multi_member_sets
from iga.evaluation.lcs import (
    DEFINITIONS,
    layer_dict,
    lcs_per_layer,
    lcs_ratio,
    logical_consistency,
    ood_drift_per_set,
    permutation_baseline,
    prepare,
)


@dataclass
class LCSReport:
    """LCS numbers for one evaluation (lower is better); ``None`` where the data cannot define a number."""

    canonical: float  # headline: canonical LCS at ``layer``
    ratio: float  # within-set SS / total SS (1 − η²)
    permutation_mean: float  # canonical LCS after random regrouping into sets of the same sizes
    permutation_std: float
    alternatives: dict[str, float]  # every definition in DEFINITIONS with its default centring/normalisation
    ood: (
        float | None
    )  # held-out members' drift from the train-domain centroid (needs domains + train_domains)
    canonical_train: float | None  # canonical LCS over train-domain rows only (re-centred on them)
    per_layer: dict[int, float]  # canonical LCS per collected layer ({} when a single N×D array was given)
    top_half_mean: float | None  # mean of ``per_layer`` over the upper half of the collected layers
    layer: int | None  # the headline layer (None when a single N×D array was given)
    n_rows: int
    n_sets: int  # sets with ≥ 2 members (the ones scored)
    n_skipped: int  # singleton sets, skipped
    n_zero_rows: int  # rows equal to the global mean (left as zero vectors instead of normalised)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (layer keys become strings, as JSON requires)."""
        out = asdict(self)
        out["per_layer"] = {str(k): v for k, v in self.per_layer.items()}
        return out


def _top_half_mean(per_layer: Mapping[int, float]) -> float | None:
    if not per_layer:
        return None
    layers = sorted(per_layer)
    return float(np.mean([per_layer[k] for k in layers[len(layers) // 2 :]]))


def compute_lcs_report(
    hs: Any,
    set_ids: Sequence[Hashable],
    *,
    domains: Sequence[Hashable] | None = None,
    train_domains: Collection[Hashable] | None = None,
    layer: int | None = None,
    centre: bool = True,
    normalise: bool = True,
    n_permutations: int = 20,
    seed: int = 0,
    extra_settings: Mapping[str, Any] | None = None,
) -> LCSReport:
    """Compute the full :class:`LCSReport`.

    ``hs`` is one ``N×D`` array, or per-layer states (``{layer: N×D}`` / ``L×N×D``) of which ``layer`` (default:
    the last) is the headline. ``domains`` + ``train_domains`` enable ``ood`` and ``canonical_train``.
    ``extra_settings`` (e.g. the pooling used to collect ``hs``) is stored with the settings.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=(5, 8))
    >>> h = np.repeat(base, 4, axis=0)  # 5 sets of 4 identical members
    >>> report = compute_lcs_report(h, np.repeat(np.arange(5), 4))
    >>> report.canonical, report.n_sets
    (0.0, 5)
    """
    per_layer: dict[int, float] = {}
    if isinstance(hs, Mapping) or getattr(hs, "ndim", None) == 3:
        layers = layer_dict(hs)
        if not layers:
            raise ValueError("hs: no layers given")
        layer = max(layers) if layer is None else int(layer)
        if layer not in layers:
            raise ValueError(f"layer: {layer} was not collected; available: {sorted(layers)}")
        per_layer = lcs_per_layer(layers, set_ids, centre=centre, normalise=normalise)
        h = as_matrix(layers[layer], f"hs[{layer}]")
    else:
        if layer is not None:
            raise ValueError("layer: only meaningful when hs holds several layers")
        h = as_matrix(hs)

    labels = as_labels(set_ids, len(h), "set_ids")
    groups, n_skipped = multi_member_sets(labels)
    z, n_zero = prepare(h, centre=centre, normalise=normalise)
    perm_mean, perm_std = permutation_baseline(
        h, labels, n_permutations, seed, centre=centre, normalise=normalise
    )
    ood = canonical_train = None
    if domains is not None and train_domains is not None:
        domain_list = as_labels(domains, len(h), "domains")
        drift = ood_drift_per_set(z, labels, domain_list, train_domains)
        ood = float(drift.mean()) if len(drift) else None
        train = set(train_domains)
        train_rows = [i for i, d in enumerate(domain_list) if d in train]
        train_labels = [labels[i] for i in train_rows]
        if multi_member_sets(train_labels)[0]:
            canonical_train = logical_consistency(
                h[train_rows], train_labels, centre=centre, normalise=normalise
            )

    settings = {
        "definition": "canonical",
        "centre": centre,
        "normalise": normalise,
        "layer": layer,
        "n_permutations": n_permutations,
        "seed": seed,
        "train_domains": sorted(map(str, train_domains)) if train_domains is not None else None,
        **dict(extra_settings or {}),
    }
    return LCSReport(
        canonical=logical_consistency(h, labels, centre=centre, normalise=normalise),
        ratio=lcs_ratio(h, labels, centre=centre, normalise=normalise),
        permutation_mean=perm_mean,
        permutation_std=perm_std,
        alternatives={name: logical_consistency(h, labels, definition=name) for name in DEFINITIONS},  # type: ignore[arg-type]
        ood=ood,
        canonical_train=canonical_train,
        per_layer=per_layer,
        top_half_mean=_top_half_mean(per_layer),
        layer=layer,
        n_rows=len(h),
        n_sets=len(groups),
        n_skipped=n_skipped,
        n_zero_rows=n_zero,
        settings=settings,
    )
