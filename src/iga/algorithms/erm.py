"""ERM-SFT: the plain mean of the per-domain losses and the plain base optimizer, no per-domain gradients."""

from __future__ import annotations

from iga.algorithms.base import Algorithm
from iga.algorithms.registry import register_algorithm


@register_algorithm("erm")
class ERM(Algorithm):
    """Empirical risk minimisation: ``L = (1/K) Σ_k L_k`` (equal to pooled token CE when domains hold the same
    number of supervised tokens), optimised by the base optimizer as is.

    Example:
        >>> import torch
        >>> ERM(num_domains=3).loss(torch.tensor([1.0, 2.0, 6.0]), step=0)
        tensor(3.)
    """

    capture_space = None
