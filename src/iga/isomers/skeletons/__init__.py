"""Logical skeletons (one module each) and their registry."""

from iga.isomers.skeletons.base import Knobs, Skeleton, Solution, TemplateSpec
from iga.isomers.skeletons.registry import all_skeletons, get_skeleton, list_skeletons, register_skeleton

__all__ = [
    "Knobs",
    "Skeleton",
    "Solution",
    "TemplateSpec",
    "all_skeletons",
    "get_skeleton",
    "list_skeletons",
    "register_skeleton",
]
