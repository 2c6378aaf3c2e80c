"""Domains are data: YAML files shipped in ``iga/isomers/domains/`` plus any in a user ``--domains-dir``.

A domain file looks like this (every key is checked; see ``domains/math.yaml`` for a full one)::

    name: astronomy            # lowercase identifier; several files may share a name (see below)
    role: heldout              # train | heldout | stress
    description: Stars, probes and orbits.
    lexicon:                   # word pools shared by skeletons (lists), or tables (mappings)
      names: [Vesta-9, Orin, ...]
    shortcut_cue: "The mission log hints {value}."   # optional; the only slot is {value}
    skeletons:
      S01_arith_chain:
        questions: ["...?", "...?", "...?"]       # >= 3 paraphrases; or {kind: [...]} per question kind
        premises: {start: "...", add: ["...", "..."], ...}   # one template or a list to draw from
        steps: {add: "{a} + {b} = {out} tonnes", ...}        # one template per solver op
        words: {items: [...]}                     # pools for this skeleton only (looked up before lexicon)
      M01_arith_walk:                             # micro skeletons: steps may be left out (the skeleton's
        narration: {now: "So the dose is {n} mg."}  # symbolic default), narration is required (base text)

Templates use ``{slot}`` placeholders (:mod:`iga.isomers.text`); which slots each template may use, which
templates and pools a section needs, is the skeleton's :class:`~iga.isomers.skeletons.base.TemplateSpec`.

**Split domains.** Files with the same ``name`` are merged key by key, so a user file with just ``name: math``
and a ``skeletons:`` section adds templates for a new skeleton to a shipped domain. A key defined in two files
is an error naming both. A section may be absent; a build that needs it fails with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from iga.isomers.errors import ConfigError, DomainError
from iga.isomers.skeletons import all_skeletons, get_skeleton
from iga.isomers.skeletons.base import TemplateSpec
from iga.isomers.text import TemplateError, template_slots

ROLES = ("train", "heldout", "stress")
#: Order of the shipped domains (user domains follow, by role then name).
SHIPPED_ORDER = (
    "math",
    "medicine",
    "law",
    "science",
    "finance",
    "sports",
    "cooking",
    "fictional",
    "symbolic",
    "counterfactual",
)
MIN_PARAPHRASES = 3
_TOP_KEYS = ("name", "role", "description", "lexicon", "shortcut_cue", "skeletons")
_SECTION_KEYS = ("questions", "premises", "steps", "words", "narration")
_NAME = re.compile(r"[a-z][a-z0-9_]*")

Path_ = tuple[str, ...]
Pool = tuple[str, ...] | Mapping[str, str]


@dataclass(frozen=True)
class Section:
    """One domain's templates for one skeleton."""

    questions: Mapping[str, tuple[str, ...]]
    premises: Mapping[str, tuple[str, ...]]
    steps: Mapping[str, str]
    words: Mapping[str, Pool]
    narration: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    """A loaded, validated domain (possibly merged from several files)."""

    name: str
    role: str
    description: str
    lexicon: Mapping[str, Pool]
    shortcut_cue: str | None
    sections: Mapping[str, Section]
    files: tuple[str, ...]

    def covers(self, skeleton_id: str) -> bool:
        return skeleton_id in self.sections

    def pool(self, skeleton_id: str, name: str) -> Pool:
        """A word pool or table for a skeleton: the section's ``words`` first, then the ``lexicon``."""
        words = self.sections[skeleton_id].words
        return words[name] if name in words else self.lexicon[name]


def load_domains(domains_dir: str | Path | None = None) -> dict[str, Domain]:
    """Load the shipped domains and those in ``domains_dir`` (``*.yaml``/``*.yml``), merged by name, in order.

    >>> list(load_domains())[:4]
    ['math', 'medicine', 'law', 'science']
    """
    files: list[tuple[str, str]] = []  # (label for messages, text)
    shipped = resources.files("iga.isomers") / "domains"
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            files.append((f"<iga>/isomers/domains/{entry.name}", entry.read_text(encoding="utf-8")))
    if domains_dir is not None:
        root = Path(domains_dir)
        if not root.is_dir():
            raise DomainError(f"{root}: --domains-dir is not a directory")
        for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
            files.append((str(path), path.read_text(encoding="utf-8")))
    return merge_domain_files(files)


def merge_domain_files(files: Iterable[tuple[str, str]]) -> dict[str, Domain]:
    """Parse, check, merge (by ``name``) and validate domain files given as ``(label, yaml_text)`` pairs."""
    leaves: dict[str, dict[Path_, tuple[Any, str]]] = {}
    labels: dict[str, list[str]] = {}
    for label, text in files:
        data = _parse(label, text)
        name = data["name"]
        labels.setdefault(name, []).append(label)
        merged = leaves.setdefault(name, {})
        for path, value in _flatten(label, data).items():
            if path in merged:
                raise DomainError(
                    f"{label}: {'.'.join(path)}: already defined in {merged[path][1]} "
                    f"(domain {name!r} is split across files; define each key once)"
                )
            merged[path] = (value, label)
    domains = [_build(name, merged, tuple(labels[name])) for name, merged in leaves.items()]
    domains.sort(key=_order_key)
    return {d.name: d for d in domains}


def _order_key(domain: Domain) -> tuple:
    if domain.name in SHIPPED_ORDER:
        return (0, SHIPPED_ORDER.index(domain.name), "")
    return (1, ROLES.index(domain.role), domain.name)


def _parse(label: str, text: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        raise DomainError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise DomainError(f"{label}: a domain file must be a mapping with keys {', '.join(_TOP_KEYS)}")
    _known_keys(label, (), data, _TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DomainError(
            f"{label}: name: required, a lowercase identifier such as 'astronomy' (got {name!r})"
        )
    return data


def _known_keys(label: str, path: Path_, data: Mapping, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            raise DomainError(
                f"{label}: {'.'.join((*path, str(key)))}: unknown key (allowed: {', '.join(allowed)})"
            )


def _flatten(label: str, data: dict) -> dict[Path_, Any]:
    """The file's leaves keyed by path, type-checked; ``name`` is not a leaf (every file repeats it)."""
    out: dict[Path_, Any] = {}
    for key in ("role", "description", "shortcut_cue"):
        if key in data:
            out[(key,)] = _string(label, (key,), data[key])
    if ("role",) in out and out[("role",)] not in ROLES:
        raise DomainError(f"{label}: role: {out[('role',)]!r} is not one of {', '.join(ROLES)}")
    for pool, value in _mapping(label, ("lexicon",), data.get("lexicon", {})).items():
        out[("lexicon", pool)] = _pool(label, ("lexicon", pool), value)
    for sk_id, section in _mapping(label, ("skeletons",), data.get("skeletons", {})).items():
        base = ("skeletons", sk_id)
        section = _mapping(label, base, section)
        _known_keys(label, base, section, _SECTION_KEYS)
        questions = section.get("questions", {})
        if isinstance(questions, list):
            questions = {"ask": questions}
        for kind, templates in _mapping(label, (*base, "questions"), questions).items():
            out[(*base, "questions", kind)] = _strings(label, (*base, "questions", kind), templates)
        for part in ("premises", "narration"):
            for kind, templates in _mapping(label, (*base, part), section.get(part, {})).items():
                path = (*base, part, kind)
                out[path] = (
                    (_string(label, path, templates),)
                    if isinstance(templates, str)
                    else _strings(label, path, templates)
                )
        for op, template in _mapping(label, (*base, "steps"), section.get("steps", {})).items():
            out[(*base, "steps", op)] = _string(label, (*base, "steps", op), template)
        for pool, value in _mapping(label, (*base, "words"), section.get("words", {})).items():
            out[(*base, "words", pool)] = _pool(label, (*base, "words", pool), value)
    return out


def _where(label: str, path: Path_) -> str:
    return f"{label}: {'.'.join(path)}"


def _mapping(label: str, path: Path_, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DomainError(
            f"{_where(label, path)}: expected a mapping with string keys, got {type(value).__name__}"
        )
    return value


def _string(label: str, path: Path_, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError(
            f"{_where(label, path)}: expected a non-empty string, got {value!r} "
            "(quote words such as yes/no/on/off, which YAML reads as booleans)"
        )
    return value


def _strings(label: str, path: Path_, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise DomainError(f"{_where(label, path)}: expected a non-empty list of strings")
    return tuple(_string(label, (*path, str(i)), v) for i, v in enumerate(value))


def _pool(label: str, path: Path_, value: Any) -> Pool:
    """A word list (distinct entries) or a table (distinct values); words carry no template slots."""
    if isinstance(value, dict):
        table = {k: _string(label, (*path, str(k)), v) for k, v in _mapping(label, path, value).items()}
        words: Iterable[str] = table.values()
        result: Pool = table
    elif isinstance(value, str):
        words = result = (_string(label, path, value),)
    else:
        words = result = _strings(label, path, value)
    seen: set[str] = set()
    for word in words:
        if "{" in word or "}" in word:
            raise DomainError(
                f"{_where(label, path)}: word {word!r} contains a brace (words cannot hold slots)"
            )
        if word in seen:
            raise DomainError(
                f"{_where(label, path)}: {word!r} appears twice (entries must be distinct, "
                "or answers would be ambiguous)"
            )
        seen.add(word)
    return result


def _build(name: str, leaves: dict[Path_, tuple[Any, str]], files: tuple[str, ...]) -> Domain:
    every = ", ".join(files)

    def get(path: Path_, default: Any = None) -> Any:
        return leaves[path][0] if path in leaves else default

    for key in ("role", "description"):
        if (key,) not in leaves:
            raise DomainError(f"{every}: {key}: missing for domain {name!r} (one of its files must set it)")
    cue = get(("shortcut_cue",))
    if cue is not None:
        _check_template(leaves[("shortcut_cue",)][1], ("shortcut_cue",), cue, frozenset({"value"}))
        if "value" not in template_slots(cue):
            raise DomainError(
                f"{leaves[('shortcut_cue',)][1]}: shortcut_cue: must contain the slot {{value}}"
            )
    lexicon = {path[1]: value for path, (value, _) in leaves.items() if path[0] == "lexicon"}
    sections = {}
    for sk_id in dict.fromkeys(path[1] for path in leaves if path[0] == "skeletons"):
        sections[sk_id] = _section(name, sk_id, leaves, lexicon)
    return Domain(
        name=name,
        role=get(("role",)),
        description=get(("description",)),
        lexicon=lexicon,
        shortcut_cue=cue,
        sections=sections,
        files=files,
    )


def _section(
    domain: str, sk_id: str, leaves: dict[Path_, tuple[Any, str]], lexicon: Mapping[str, Pool]
) -> Section:
    base = ("skeletons", sk_id)
    mine = {path[2:]: entry for path, entry in leaves.items() if path[:2] == base}
    first = next(iter(mine.values()))[1]
    files = ", ".join(dict.fromkeys(label for _, label in mine.values()))
    try:
        spec = get_skeleton(sk_id).spec
    except ConfigError:
        known = ", ".join(sk.id for sk in all_skeletons())
        raise DomainError(f"{first}: skeletons.{sk_id}: unknown skeleton (known: {known})") from None
    if get_skeleton(sk_id).id != sk_id:
        raise DomainError(f"{first}: skeletons.{sk_id}: use the full skeleton id {get_skeleton(sk_id).id!r}")
    parts: dict[str, dict[str, Any]] = {k: {} for k in _SECTION_KEYS}
    for (part, key), (value, label) in mine.items():
        parts[part][key] = (value, label)
    for op, template in spec.default_steps.items():  # the skeleton's domain-free step, unless overridden
        parts["steps"].setdefault(op, (template, f"<skeleton {sk_id}>"))
    wanted = {
        "questions": spec.questions,
        "premises": spec.premises,
        "steps": spec.steps,
        "narration": spec.narration,
    }
    for part, slots_by_key in wanted.items():
        for key in parts[part]:
            if key not in slots_by_key:
                label = parts[part][key][1]
                raise DomainError(
                    f"{label}: skeletons.{sk_id}.{part}.{key}: unknown {part.removesuffix('s')} kind for {sk_id} "
                    f"(expected: {', '.join(slots_by_key)})"
                )
        for key, allowed in slots_by_key.items():
            if key not in parts[part]:
                raise DomainError(
                    f"{files}: skeletons.{sk_id}.{part}.{key}: missing in domain {domain!r} "
                    f"({sk_id} needs {part}: {', '.join(slots_by_key)})"
                )
            value, label = parts[part][key]
            templates = (value,) if isinstance(value, str) else value
            for i, template in enumerate(templates):
                path = (*base, part, key) + ((str(i),) if len(templates) > 1 else ())
                _check_template(label, path, template, allowed)
                if part == "questions" and not template.rstrip().endswith("?"):
                    raise DomainError(
                        f"{_where(label, path)}: a question must end with '?' (got {template!r})"
                    )
            if part == "questions" and len(templates) < MIN_PARAPHRASES:
                raise DomainError(
                    f"{_where(label, (*base, part, key))}: needs at least {MIN_PARAPHRASES} "
                    f"paraphrases, found {len(templates)}"
                )
    words = {key: value for key, (value, _) in parts["words"].items()}
    for key, (_, label) in parts["words"].items():
        if key not in spec.pools and key not in spec.tables:
            raise DomainError(
                f"{label}: skeletons.{sk_id}.words.{key}: unknown pool for {sk_id} "
                f"(expected: {', '.join([*spec.pools, *spec.tables]) or 'none'})"
            )
    _check_pools(domain, files, sk_id, spec, words, lexicon)
    return Section(
        questions={k: v for k, (v, _) in parts["questions"].items()},
        premises={k: v for k, (v, _) in parts["premises"].items()},
        steps={k: v for k, (v, _) in parts["steps"].items()},
        words=words,
        narration={k: v for k, (v, _) in parts["narration"].items()},
    )


def _check_template(label: str, path: Path_, template: str, allowed: frozenset[str]) -> None:
    try:
        used = template_slots(template)
    except TemplateError as e:
        raise DomainError(f"{_where(label, path)}: {e}") from None
    bad = [s for s in used if s not in allowed]
    if bad:
        raise DomainError(
            f"{_where(label, path)}: unknown slot {{{bad[0]}}} "
            f"(this template may use: {', '.join('{' + s + '}' for s in sorted(allowed)) or 'no slots'})"
        )


def _check_pools(
    domain: str,
    files: str,
    sk_id: str,
    spec: TemplateSpec,
    words: Mapping[str, Pool],
    lexicon: Mapping[str, Pool],
) -> None:
    for pool, minimum in spec.pools.items():
        value = words.get(pool, lexicon.get(pool))
        where = f"{files}: skeletons.{sk_id}.words.{pool} (or lexicon.{pool})"
        if value is None:
            raise DomainError(
                f"{where}: missing in domain {domain!r}; {sk_id} needs a list of >= {minimum} words"
            )
        if isinstance(value, Mapping) or len(value) < minimum:
            found = "a table" if isinstance(value, Mapping) else f"{len(value)}"
            raise DomainError(
                f"{where}: {sk_id} needs a list of at least {minimum} distinct words, found {found}"
            )
    for table, keys in spec.tables.items():
        value = words.get(table, lexicon.get(table))
        where = f"{files}: skeletons.{sk_id}.words.{table} (or lexicon.{table})"
        if not isinstance(value, Mapping):
            raise DomainError(f"{where}: {sk_id} needs a table with keys {', '.join(keys)}")
        missing = [k for k in keys if k not in value]
        extra = [k for k in value if k not in keys]
        if missing or extra:
            raise DomainError(
                f"{where}: missing keys {missing} / unknown keys {extra} (expected {', '.join(keys)})"
            )
