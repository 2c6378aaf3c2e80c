"""Logical Consistency Score (LCS) and its calibrations, on plain arrays (lower is better).

``h`` is ``N×D`` (one pooled hidden state per example), ``set_ids`` names each row's isomer set. The canonical
score (benchmarks.md §5.2) centres globally (μ over all N rows), unit-normalises each row and averages, over sets,
the within-set dispersion ``(1/K) Σ_d ‖z_d − z̄_s‖² = 1 − ‖z̄_s‖²``: 0 when every isomer has the same
representation, ≈ 1 − 1/K for unrelated ones. Sets with a single member are skipped (and counted by the report).

The paper's exact definition is unknown, so centring, normalisation and the definition itself are explicit
parameters (see :data:`DEFINITIONS`), and :mod:`iga.evaluation.lcs_report` records them with the numbers.

>>> import numpy as np
>>> h = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
>>> logical_consistency(h, ["a", "a", "b", "b"])
0.0
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from iga.evaluation._arrays import as_labels, as_matrix, group_indices, multi_member_sets

Definition = Literal["canonical", "pairwise_cosine", "relative_dispersion"]

#: Supported definitions and their default (centre, normalise):
#: ``canonical`` — within-set dispersion of globally centred unit vectors (the headline);
#: ``pairwise_cosine`` — mean pairwise cosine distance within a set, uncentred (= K/(K−1) × canonical on the same
#: unit vectors); ``relative_dispersion`` — ``(1/K) Σ_k ‖h_k − h̄_s‖² / ‖h̄_s‖²`` on raw states.
DEFINITIONS: dict[str, tuple[bool, bool]] = {
    "canonical": (True, True),
    "pairwise_cosine": (False, True),
    "relative_dispersion": (False, False),
}

# A row whose norm (after centring) is below this fraction of the largest input row norm is rounding noise, not a
# direction: normalising it would turn the noise into an arbitrary unit vector.
_ZERO_RTOL = 1e-10


def resolve_settings(definition: str, centre: bool | None, normalise: bool | None) -> tuple[bool, bool]:
    """The (centre, normalise) actually used: the definition's defaults where the caller passed ``None``."""
    if definition not in DEFINITIONS:
        raise ValueError(f"definition: unknown {definition!r}; allowed: {', '.join(DEFINITIONS)}")
    default_centre, default_normalise = DEFINITIONS[definition]
    centre = default_centre if centre is None else bool(centre)
    normalise = default_normalise if normalise is None else bool(normalise)
    if definition == "pairwise_cosine" and not normalise:
        raise ValueError("normalise: a cosine distance always normalises; use normalise=True (or None)")
    return centre, normalise


def prepare(h: Any, *, centre: bool = True, normalise: bool = True) -> tuple[np.ndarray, int]:
    """Globally centre and/or unit-normalise the rows of ``h``; returns ``(z, n_zero_rows)``.

    Rows that are zero (up to rounding) stay zero instead of being normalised; they are counted so a report can
    flag them (after centring they mean "exactly the average representation").

    >>> z, n_zero = prepare([[3.0, 4.0], [0.0, 0.0]], centre=False)
    >>> z.tolist(), n_zero
    ([[0.6, 0.8], [0.0, 0.0]], 1)
    """
    h = as_matrix(h)
    scale = float(np.linalg.norm(h, axis=1).max())
    z = h - h.mean(axis=0) if centre else h.copy()
    norms = np.linalg.norm(z, axis=1)
    zero = norms <= _ZERO_RTOL * scale
    z[zero] = 0.0
    if normalise:
        z[~zero] /= norms[~zero, None]
    return z, int(zero.sum())


def _within_dispersion(z: np.ndarray) -> float:
    """``(1/K) Σ_d ‖z_d − z̄‖²``, computed on rows shifted by the first member (identical rows give exactly 0)."""
    y = z - z[0]
    dev = y - y.mean(axis=0)
    return float(np.einsum("kd,kd->", dev, dev) / len(z))


def _pairwise_cosine(z: np.ndarray) -> float:
    """Mean over ordered pairs d ≠ e of ``1 − cos(z_d, z_e)``; a zero row has cosine 0 with everything."""
    norms = np.linalg.norm(z, axis=1)
    u = np.divide(z, norms[:, None], out=np.zeros_like(z), where=norms[:, None] > 0)
    gram = u @ u.T
    k = len(z)
    off_diagonal = gram[~np.eye(k, dtype=bool)]
    return float(np.mean(1.0 - off_diagonal))


def _relative_dispersion(z: np.ndarray) -> float:
    centroid = z.mean(axis=0)
    # A zero centroid makes the ratio infinite; the floor keeps the result finite (and huge) instead of NaN.
    return _within_dispersion(z) / max(float(centroid @ centroid), np.finfo(np.float64).tiny)


_PER_SET: dict[str, Callable[[np.ndarray], float]] = {
    "canonical": _within_dispersion,
    "pairwise_cosine": _pairwise_cosine,
    "relative_dispersion": _relative_dispersion,
}


def per_set_scores(z: np.ndarray, groups: Sequence[np.ndarray], definition: str = "canonical") -> np.ndarray:
    """One score per set (rows of ``z`` already prepared); the building block of every LCS variant."""
    score = _PER_SET[definition]
    return np.array([score(z[idx]) for idx in groups], dtype=np.float64)


def _require_sets(groups: Sequence[np.ndarray]) -> None:
    if not groups:
        raise ValueError("set_ids: no isomer set has two or more members, so consistency is undefined")


def logical_consistency(
    h: Any,
    set_ids: Sequence[Hashable],
    *,
    definition: Definition = "canonical",
    centre: bool | None = None,
    normalise: bool | None = None,
) -> float:
    """LCS of ``h`` (``N×D``) over the isomer sets named by ``set_ids`` (mean over sets with ≥ 2 members).

    ``centre``/``normalise`` default to the definition's own choice (see :data:`DEFINITIONS`).

    >>> logical_consistency([[1.0, 0.0], [0.0, 1.0]], [7, 7], definition="pairwise_cosine")
    1.0
    """
    centre, normalise = resolve_settings(definition, centre, normalise)
    z, _ = prepare(h, centre=centre, normalise=normalise)
    groups, _ = multi_member_sets(as_labels(set_ids, len(z), "set_ids"))
    _require_sets(groups)
    return float(per_set_scores(z, groups, definition).mean())


def lcs_ratio(h: Any, set_ids: Sequence[Hashable], *, centre: bool = True, normalise: bool = True) -> float:
    """Within-set sum of squares / total sum of squares (= 1 − η²) over the rows of multi-member sets.

    0 means logical identity explains all representational variance; ≈ 1 − 1/K for unrelated rows. Returns 0.0
    when there is no variance at all (every row identical).
    """
    z, _ = prepare(h, centre=centre, normalise=normalise)
    groups, _ = multi_member_sets(as_labels(set_ids, len(z), "set_ids"))
    _require_sets(groups)
    rows = z[np.concatenate(groups)]
    total = float(((rows - rows.mean(axis=0)) ** 2).sum())
    within = sum(_within_dispersion(z[idx]) * len(idx) for idx in groups)
    return within / total if total > 0 else 0.0


def permutation_baseline(
    h: Any,
    set_ids: Sequence[Hashable],
    n_permutations: int = 20,
    seed: int = 0,
    *,
    centre: bool = True,
    normalise: bool = True,
) -> tuple[float, float]:
    """Canonical LCS after randomly regrouping rows into sets of the same sizes: ``(mean, std)`` over draws.

    This is the value a model with no logical structure in its representations would get (≈ 1 − 1/K); the std
    uses ``ddof=1`` (0.0 for a single draw).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations: must be ≥ 1, got {n_permutations}")
    z, _ = prepare(h, centre=centre, normalise=normalise)
    groups, _ = multi_member_sets(as_labels(set_ids, len(z), "set_ids"))
    _require_sets(groups)
    rows = np.concatenate(groups)
    bounds = np.cumsum([len(idx) for idx in groups])[:-1]
    rng = np.random.default_rng(seed)
    values = [
        per_set_scores(z, np.split(rng.permutation(rows), bounds)).mean() for _ in range(n_permutations)
    ]
    std = float(np.std(values, ddof=1)) if n_permutations > 1 else 0.0
    return float(np.mean(values)), std


def ood_drift_per_set(
    z: np.ndarray,
    labels: Sequence[Hashable],
    domains: Sequence[Hashable],
    train_domains: Collection[Hashable],
) -> np.ndarray:
    """Per set with both train and OOD members: mean over OOD members of ``1 − cos(z_d, train centroid)``."""
    train = set(train_domains)
    values = []
    for idx in group_indices(labels).values():
        is_train = np.array([domains[i] in train for i in idx])
        if is_train.all() or not is_train.any():
            continue
        centroid = z[idx[is_train]].mean(axis=0)
        members = z[idx[~is_train]]
        denom = np.linalg.norm(members, axis=1) * np.linalg.norm(centroid)
        # A zero vector has no direction: its cosine with anything is taken as 0 (distance 1).
        cos = np.divide(members @ centroid, denom, out=np.zeros(len(members)), where=denom > 0)
        values.append(float(np.mean(1.0 - cos)))
    return np.array(values, dtype=np.float64)


def lcs_ood(
    h: Any,
    set_ids: Sequence[Hashable],
    domains: Sequence[Hashable],
    train_domains: Collection[Hashable],
    *,
    centre: bool = True,
    normalise: bool = True,
) -> float:
    """How far held-out-domain members drift from their set's train-domain centroid, in ``[0, 2]``.

    ``mean_s mean_{d ∉ train} (1 − cos(z_{s,d}, z̄_s^train))`` over the sets that have members of both kinds.

    >>> lcs_ood([[1.0, 0.0], [0.0, 1.0]], ["s", "s"], ["math", "finance"], {"math"}, centre=False)
    1.0
    """
    z, _ = prepare(h, centre=centre, normalise=normalise)
    labels = as_labels(set_ids, len(z), "set_ids")
    values = ood_drift_per_set(z, labels, as_labels(domains, len(z), "domains"), train_domains)
    if not len(values):
        raise ValueError(
            f"domains: no isomer set has both a train-domain member (train_domains={sorted(map(str, train_domains))}) "
            "and a held-out one"
        )
    return float(values.mean())


def layer_dict(hs: Any) -> dict[int, Any]:
    """Per-layer states as ``{layer: N×D}`` from a mapping or an ``L×N×D`` array/tensor."""
    if isinstance(hs, Mapping):
        return {int(k): v for k, v in hs.items()}
    if getattr(hs, "ndim", None) != 3:
        raise ValueError(
            f"hs: expected a {{layer: N×D}} mapping or an L×N×D array, got shape {getattr(hs, 'shape', None)}"
        )
    return {i: hs[i] for i in range(hs.shape[0])}


def lcs_per_layer(
    hs: Any,
    set_ids: Sequence[Hashable],
    *,
    definition: Definition = "canonical",
    centre: bool | None = None,
    normalise: bool | None = None,
) -> dict[int, float]:
    """:func:`logical_consistency` for each layer of ``hs`` (``{layer: N×D}`` or ``L×N×D``)."""
    return {
        layer: logical_consistency(h, set_ids, definition=definition, centre=centre, normalise=normalise)
        for layer, h in sorted(layer_dict(hs).items())
    }
