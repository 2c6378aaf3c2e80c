"""Build an IsoBench suite: sample instances per split, render every isomer set, write JSONL + manifest.

>>> from iga.isomers.presets import make_config
>>> records = generate_records(make_config("tiny", skeletons=["S01"]), seed=0)
>>> [len(records[s]) for s in SPLITS]
[12, 4, 16, 16, 16, 12]

Splits are made by logical instance: an instance (and all its renderings) lives in exactly one split, and no two
instances of the suite share parameters. ``train``/``val`` render in the training domains; ``id_test``,
``ood_surface`` and ``ood_depth`` in every training and held-out domain (so each evaluation set is a full isomer
set and LCS is computable; ID accuracy is read on the training-domain members of ``id_test``, OOD accuracy on the
held-out members of ``ood_surface``); ``stress`` in the stress domains plus the training domains. ``ood_depth``
uses the skeletons' ``ood_depth`` difficulty, every other split the ``train`` one.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iga.isomers.domains import Domain, load_domains
from iga.isomers.errors import ConfigError, DomainError
from iga.isomers.instance import LogicalInstance
from iga.isomers.presets import SuiteConfig, resolve_config
from iga.isomers.record import GENERATOR_VERSION, SPLITS
from iga.isomers.render import ANSWER_PREFIX, render
from iga.isomers.rng import HashRng
from iga.isomers.shortcuts import make_cue, teacher_answer
from iga.isomers.skeletons import get_skeleton
from iga.utils.io import atomic_write_json, atomic_write_text, dumps_canonical, sha256_bytes, stable_hash

#: Domain roles rendered in each split.
SPLIT_ROLES: Mapping[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("train",),
    "id_test": ("train", "heldout"),
    "ood_surface": ("train", "heldout"),
    "ood_depth": ("train", "heldout"),
    "stress": ("train", "stress"),
}
#: Attempts to find an instance whose parameters are new to the suite before giving up.
MAX_ATTEMPTS = 200


def split_domains(domains: Mapping[str, Domain], split: str, *, oracle: bool = False) -> list[Domain]:
    """The domains rendered in ``split``, in domain-list order (``oracle``: train/val add the held-out ones)."""
    roles = SPLIT_ROLES[split] + (("heldout",) if oracle and split in ("train", "val") else ())
    return [d for d in domains.values() if d.role in roles]


def select_domains(config: SuiteConfig, domains: Mapping[str, Domain]) -> dict[str, Domain]:
    """Apply ``config.domains`` and check that every chosen domain covers every chosen skeleton."""
    if config.domains is not None:
        unknown = [d for d in config.domains if d not in domains]
        if unknown:
            raise ConfigError(f"config.domains: unknown domain {unknown[0]!r} (loaded: {', '.join(domains)})")
        domains = {name: d for name, d in domains.items() if name in config.domains}
    if not any(d.role == "train" for d in domains.values()):
        raise ConfigError("config.domains: select at least one training domain")
    for d in domains.values():
        for sk in config.skeletons:
            if not d.covers(sk):
                raise DomainError(
                    f"{', '.join(d.files)}: skeletons.{sk}: domain {d.name!r} has no section for "
                    f"{sk} (add one, or leave the skeleton out with --skeletons)"
                )
    return dict(domains)


def generate_records(
    config: SuiteConfig | str | Mapping[str, Any],
    seed: int = 0,
    *,
    domains: Mapping[str, Domain] | None = None,
) -> dict[str, list[dict]]:
    """All records of a suite, in memory, per split (pure: same inputs, same output)."""
    config = resolve_config(config)
    domains = select_domains(config, load_domains() if domains is None else domains)
    config.shortcut.check_domains([d for d in domains.values() if d.role == "train"])
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split in SPLITS:
        regime = "ood_depth" if split == "ood_depth" else "train"
        members = split_domains(domains, split, oracle=config.oracle)
        records = out[split] = []
        for sk_id in config.skeletons:
            sk = get_skeleton(sk_id)
            knobs = config.knobs(sk_id, regime)
            for index in range(config.per_skeleton(split)):
                for attempt in range(MAX_ATTEMPTS):
                    inst = sk.instance(
                        HashRng(seed, sk.id, f"{split}:{index}:{attempt}", "sample"), knobs, regime
                    )
                    key = stable_hash([sk.id, inst.params], 32)
                    if key not in seen:
                        seen.add(key)
                        break
                else:
                    raise ConfigError(
                        f"difficulty.{sk.id}.{regime}: only {len(seen)} distinct instances found; "
                        "the knob ranges are too narrow for the requested sizes"
                    )
                instance_id = f"{sk.code}-{split}-{index:05d}"
                base = HashRng(seed, sk.id, f"{split}:{index}")
                for domain in members:
                    records.append(_record(config, inst, domain, split, instance_id, seed, base))
    return out


def _record(
    config: SuiteConfig,
    inst: LogicalInstance,
    domain: Domain,
    split: str,
    instance_id: str,
    seed: int,
    base: HashRng,
) -> dict:
    text = render(inst, domain, base.child("render", domain.name), hash_line=config.hash_line)
    # every record gets its own copy of the shared structures, so editing one never edits its isomers
    params, difficulty, trace = json.loads(json.dumps([inst.params, inst.difficulty, inst.canonical_trace]))
    noisy = teacher_answer(
        config.shortcut,
        domain,
        split,
        text.answer,
        inst.answer_type,
        text.label_space,
        base.child("noise", domain.name),
    )
    cue = make_cue(
        config.shortcut,
        domain,
        split,
        text.answer if noisy is None else noisy,
        inst.answer_type,
        text.label_space,
        base.child("cue", domain.name),
    )
    record = {
        "id": f"{instance_id}-{domain.name}",
        "instance_id": instance_id,
        "skeleton": inst.skeleton,
        "family": inst.family,
        "domain": domain.name,
        "split": split,
        "params": params,
        "difficulty": difficulty,
        "question": f"{cue['text']} {text.question}" if cue else text.question,
        "gold_cot": text.gold_cot if noisy is None else with_final_answer(text.gold_cot, noisy),
        "answer": text.answer,
        "answer_type": inst.answer_type,
        "canonical_answer": inst.answer,
        "canonical_trace": trace,
        "anchors": text.anchors,
        "label_space": text.label_space,
        "shortcut": cue,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
    }
    if config.shortcut.noise > 0.0:  # only in suites with teacher noise: other suites' bytes are unchanged
        record["teacher_answer"] = noisy
    return record


def with_final_answer(gold_cot: str, answer: str) -> str:
    """``gold_cot`` with its answer line (and ``####`` line, if any) stating ``answer``; the steps are kept.

    >>> with_final_answer("Step 1: 2 + 3 = 5.\\nThe answer is 5.\\n#### 5", "6")
    'Step 1: 2 + 3 = 5.\\nThe answer is 6.\\n#### 6'
    """
    lines = gold_cot.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(ANSWER_PREFIX):
            lines[i] = f"{ANSWER_PREFIX}{answer}."
        elif line.startswith("#### "):
            lines[i] = f"#### {answer}"
    return "\n".join(lines)


def jsonl_text(records: list[dict]) -> str:
    """The exact bytes written for a split (one canonical JSON object per line)."""
    return "".join(dumps_canonical(r) + "\n" for r in records)


def content_hash(split_sha256: Mapping[str, str]) -> str:
    """SHA-256 over the per-split file hashes: the suite's identity (build time is not part of it)."""
    return sha256_bytes(dumps_canonical(dict(split_sha256)).encode("utf-8"))


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: what was built, from what, and the hash that pins it."""

    generator_version: str
    seed: int
    config: dict
    domains: list[dict]
    splits: dict[str, dict]
    content_hash: str
    build: dict

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, out_dir: str | Path) -> Manifest:
        path = Path(out_dir) / "manifest.json"
        if not path.exists():
            raise ConfigError(f"{path}: no manifest (build a suite with `iga data build` first)")
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def build_suite(
    config_or_preset: SuiteConfig | str | Mapping[str, Any],
    out_dir: str | Path,
    *,
    seed: int = 0,
    domains_dir: str | Path | None = None,
) -> Manifest:
    """Generate a suite and write ``<out_dir>/<split>.jsonl`` and ``manifest.json`` atomically."""
    started = time.perf_counter()
    config = resolve_config(config_or_preset)
    domains = select_domains(config, load_domains(domains_dir))
    records = generate_records(config, seed, domains=domains)
    out = Path(out_dir)
    splits: dict[str, dict] = {}
    for split in SPLITS:
        rows = records[split]
        text = jsonl_text(rows)
        atomic_write_text(out / f"{split}.jsonl", text)
        splits[split] = {
            "file": f"{split}.jsonl",
            "sha256": sha256_bytes(text.encode("utf-8")),
            "records": len(rows),
            "instances": len({r["instance_id"] for r in rows}),
            "by_skeleton": dict(Counter(r["skeleton"] for r in rows)),
            "by_domain": dict(Counter(r["domain"] for r in rows)),
        }
    manifest = Manifest(
        generator_version=GENERATOR_VERSION,
        seed=seed,
        config=config.to_dict(),
        domains=[{"name": d.name, "role": d.role, "files": list(d.files)} for d in domains.values()],
        splits=splits,
        content_hash=content_hash({s: splits[s]["sha256"] for s in SPLITS}),
        build={
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    atomic_write_json(out / "manifest.json", manifest.to_dict())
    return manifest
