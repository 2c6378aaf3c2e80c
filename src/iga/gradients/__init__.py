"""Per-domain gradients from one backward: domain losses, hook-based capture and slow references.

This package imports torch; the CLI imports it lazily.
"""

from iga.gradients.capture import CAPTURE_SPACES, DomainGradCapture
from iga.gradients.layers import CapturedLayer, discover_layers
from iga.gradients.losses import IGNORE_INDEX, per_domain_token_loss
from iga.gradients.partition import DomainPartition

__all__ = [
    "CAPTURE_SPACES",
    "IGNORE_INDEX",
    "CapturedLayer",
    "DomainGradCapture",
    "DomainPartition",
    "discover_layers",
    "per_domain_token_loss",
]
