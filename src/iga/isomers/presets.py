"""Suite configuration: presets (``tiny`` / ``small`` / ``default``) and validated overrides.

>>> cfg = make_config("tiny", skeletons=["S01", "S06"])
>>> cfg.skeletons
('S01_arith_chain', 'S06_mp_chain')
>>> cfg.knobs("S01_arith_chain", "ood_depth").depth
(4, 5)

A config dict (e.g. from YAML) has the same keys as :class:`SuiteConfig`'s fields, with ``preset`` naming the
base; ``difficulty`` overrides knobs per skeleton and regime::

    {"preset": "small", "skeletons": ["S01", "S09"], "train_per_skeleton": 100,
     "shortcut": {"enabled": True, "eval": "wrong"},
     "difficulty": {"S01": {"train": {"depth": [2, 2]}, "ood_depth": {"depth": [5, 6]}}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from iga.isomers.errors import ConfigError
from iga.isomers.shortcuts import DEFAULT_RELIABILITY, ShortcutConfig
from iga.isomers.skeletons import get_skeleton, list_skeletons
from iga.isomers.skeletons.base import REGIMES, Knobs

#: Instances per skeleton: ``train``; ``val``; ``eval`` for each of id_test, ood_surface, ood_depth and stress.
PRESETS: Mapping[str, Mapping[str, int]] = {
    "tiny": {"train_per_skeleton": 3, "val_per_skeleton": 1, "eval_per_skeleton": 2},
    "small": {"train_per_skeleton": 60, "val_per_skeleton": 10, "eval_per_skeleton": 20},
    "default": {"train_per_skeleton": 500, "val_per_skeleton": 50, "eval_per_skeleton": 100},
    # The micro regime (M01-M04): enough training sets that a 5-minute run sees few of them twice, and 50
    # evaluation sets per skeleton = 200 answers per skeleton and split (4 domains each).
    "micro": {"train_per_skeleton": 2000, "val_per_skeleton": 50, "eval_per_skeleton": 50},
}
#: The skeleton suite a preset selects when the config names no skeletons.
PRESET_SUITES: Mapping[str, str] = {"micro": "micro"}
#: Shortcut defaults per preset (a config's own ``shortcut`` keys override them). The micro regime puts cues on
#: half of the training renderings, so that cue-free accuracy measures reasoning, not a change of format.
PRESET_SHORTCUT: Mapping[str, Mapping[str, Any]] = {"micro": {"share": 0.5}}


@dataclass(frozen=True)
class SuiteConfig:
    """What to generate. Build it with :func:`make_config` or :func:`resolve_config` (both validate)."""

    preset: str = "tiny"
    skeletons: tuple[str, ...] = field(default_factory=lambda: tuple(list_skeletons()))
    domains: tuple[str, ...] | None = None  # None: every loaded domain
    train_per_skeleton: int = 3
    val_per_skeleton: int = 1
    eval_per_skeleton: int = 2
    shortcut: ShortcutConfig = field(default_factory=ShortcutConfig)
    difficulty: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    hash_line: bool = False  # add a GSM-style "#### X" line after "The answer is X."
    # The oracle's data: train and val also render the held-out domains (without cues), so an ERM run on every
    # domain gives the ceiling of the ERM→oracle gap. The evaluation splits are the same instances as without it.
    oracle: bool = False

    def knobs(self, skeleton_id: str, regime: str) -> Knobs:
        """The skeleton's default knobs for ``regime`` with this config's overrides applied."""
        sk = get_skeleton(skeleton_id)
        changes = self.difficulty.get(sk.id, {}).get(regime, {})
        return sk.regimes[regime].override(changes, where=f"difficulty.{sk.id}.{regime}", bounds=sk.bounds)

    def per_skeleton(self, split: str) -> int:
        return {"train": self.train_per_skeleton, "val": self.val_per_skeleton}.get(
            split, self.eval_per_skeleton
        )

    def to_dict(self) -> dict:
        """JSON-able form (written into the manifest; :func:`resolve_config` reads it back)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["skeletons"] = list(self.skeletons)
        out["domains"] = None if self.domains is None else list(self.domains)
        out["shortcut"] = self.shortcut.to_dict()
        out["difficulty"] = {
            sk: {r: dict(k) for r, k in regimes.items()} for sk, regimes in self.difficulty.items()
        }
        return out


def make_config(preset: str = "tiny", **overrides: Any) -> SuiteConfig:
    """A preset with keyword overrides (same keys as a config dict)."""
    return resolve_config({"preset": preset, **overrides})


def resolve_config(config: SuiteConfig | str | Mapping[str, Any]) -> SuiteConfig:
    """Accept a :class:`SuiteConfig`, a preset name or a config dict; return a validated :class:`SuiteConfig`."""
    if isinstance(config, SuiteConfig):
        return config
    if isinstance(config, str):
        config = {"preset": config}
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"config: expected a preset name, a mapping or a SuiteConfig, got {type(config).__name__}"
        )
    allowed = [f.name for f in fields(SuiteConfig)]
    for key in config:
        if key not in allowed:
            raise ConfigError(f"config.{key}: unknown key (allowed: {', '.join(allowed)})")
    preset = config.get("preset", "tiny")
    if preset not in PRESETS:
        raise ConfigError(f"config.preset: {preset!r} is not one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset]}
    for key in ("train_per_skeleton", "val_per_skeleton", "eval_per_skeleton"):
        value = config.get(key, values[key])
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"config.{key}: expected a non-negative integer, got {value!r}")
        values[key] = value
    if values["train_per_skeleton"] == 0:
        raise ConfigError("config.train_per_skeleton: must be at least 1")
    skeletons = config.get("skeletons")
    if isinstance(skeletons, str):
        skeletons = [s for s in skeletons.split(",") if s.strip()]
    if skeletons is not None:
        if not skeletons:
            raise ConfigError("config.skeletons: select at least one skeleton")
        ids = [get_skeleton(s.strip()).id for s in skeletons]
        values["skeletons"] = tuple(sk for sk in list_skeletons(None) if sk in ids)  # catalogue order
    else:
        values["skeletons"] = tuple(list_skeletons(PRESET_SUITES.get(preset, "standard")))
    domains = config.get("domains")
    if domains is not None:
        if isinstance(domains, str):
            domains = [d for d in domains.split(",") if d.strip()]
        values["domains"] = tuple(d.strip() for d in domains)
    shortcut = config.get("shortcut", {})
    if isinstance(shortcut, Mapping):
        shortcut = {**PRESET_SHORTCUT.get(preset, {}), **shortcut}
    values["shortcut"] = _shortcut(shortcut)
    values["difficulty"] = _difficulty(config.get("difficulty", {}))
    values["hash_line"] = bool(config.get("hash_line", False))
    values["oracle"] = bool(config.get("oracle", False))
    cfg = SuiteConfig(**values)
    for sk in dict.fromkeys(
        [*cfg.skeletons, *cfg.difficulty]
    ):  # check overrides against bounds now, not mid-build
        for regime in REGIMES:
            cfg.knobs(sk, regime)
    return cfg


def _shortcut(value: Any) -> ShortcutConfig:
    if isinstance(value, ShortcutConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            "config.shortcut: expected a mapping with keys enabled, reliability, eval, share, noise"
        )
    allowed = ("enabled", "reliability", "eval", "share", "noise")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"config.shortcut.{key}: unknown key (allowed: {', '.join(allowed)})")
    reliability = {**DEFAULT_RELIABILITY, **dict(value.get("reliability", {}))}
    return ShortcutConfig(
        enabled=bool(value.get("enabled", True)),
        reliability=reliability,
        eval=value.get("eval", "none"),
        share=value.get("share", 1.0),
        noise=value.get("noise", 0.0),
    )


def _difficulty(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError("config.difficulty: expected {skeleton: {regime: {knob: value}}}")
    out: dict[str, dict[str, dict]] = {}
    for name, regimes in value.items():
        sk_id = get_skeleton(name).id
        if not isinstance(regimes, Mapping):
            raise ConfigError(f"config.difficulty.{name}: expected {{regime: {{knob: value}}}}")
        for regime, knobs in regimes.items():
            if regime not in REGIMES:
                raise ConfigError(
                    f"config.difficulty.{name}.{regime}: unknown regime (allowed: {', '.join(REGIMES)})"
                )
            if not isinstance(knobs, Mapping):
                raise ConfigError(f"config.difficulty.{name}.{regime}: expected {{knob: value}}")
            out.setdefault(sk_id, {})[regime] = dict(knobs)
    return out
