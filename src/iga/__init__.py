"""iga: Invariant Gradient Alignment for robust chain-of-thought distillation."""

__version__ = "0.1.0"
