"""IsoBench: Logical Isomer Sets generated offline (one logical instance rendered in many domains).

>>> from iga.isomers import generate_records, list_skeletons
>>> records = generate_records("tiny", seed=0)
>>> sorted({r["skeleton"] for r in records["train"]}) == list_skeletons()
True

Light on purpose: importing this package pulls in the standard library and PyYAML only (``datasets`` lives in
:mod:`iga.isomers.hf`, imported on demand).
"""

from iga.isomers.build import Manifest, build_suite, generate_records
from iga.isomers.domains import Domain, load_domains
from iga.isomers.errors import ConfigError, DomainError, GeneratorError, IsoBenchError
from iga.isomers.presets import PRESETS, SuiteConfig, make_config, resolve_config
from iga.isomers.shortcuts import ShortcutConfig
from iga.isomers.skeletons import get_skeleton, list_skeletons, register_skeleton

__all__ = [
    "PRESETS",
    "ConfigError",
    "Domain",
    "DomainError",
    "GeneratorError",
    "IsoBenchError",
    "Manifest",
    "ShortcutConfig",
    "SuiteConfig",
    "build_suite",
    "generate_records",
    "get_skeleton",
    "list_skeletons",
    "load_domains",
    "make_config",
    "register_skeleton",
    "resolve_config",
]
