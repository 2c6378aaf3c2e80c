"""Training methods behind a registry (ERM, IGA; the baselines add one module each) and IGA's pure math.

This package imports torch; the CLI imports it lazily.
"""

from iga.algorithms.base import Algorithm, make_base_optimizer
from iga.algorithms.erm import ERM
from iga.algorithms.iga import IGA, IGAOptimizer, create_iga_optimizer
from iga.algorithms.iga_config import IGAConfig
from iga.algorithms.lora_map import LORA_MAPS, equivalent_gradient, lora_factor_grads, tangent_projection
from iga.algorithms.mask import VARIANCE_NORMS, conflict_mask, domain_statistics, normalised_variance
from iga.algorithms.projection import truncated_svd
from iga.algorithms.registry import get_algorithm, list_algorithms, register_algorithm

__all__ = [
    "ERM",
    "IGA",
    "LORA_MAPS",
    "VARIANCE_NORMS",
    "Algorithm",
    "IGAConfig",
    "IGAOptimizer",
    "conflict_mask",
    "create_iga_optimizer",
    "domain_statistics",
    "equivalent_gradient",
    "get_algorithm",
    "list_algorithms",
    "lora_factor_grads",
    "make_base_optimizer",
    "normalised_variance",
    "register_algorithm",
    "tangent_projection",
    "truncated_svd",
]
