"""Where micro skill bases live: the content-hashed cache folder, the copies shipped with the package, and
:func:`ensure_micro_base`, which takes the cache's, else the shipped one, else trains it (:mod:`iga.models.micro_base`
holds the config and the training)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from iga.models.micro_base import (
    BASE_MARKER,
    CHECKPOINT,
    MicroBaseConfig,
    keyed_config,
    parent_config,
    polish_micro_base,
    train_micro_base,
)
from iga.utils.io import stable_hash

__all__ = ["DEFAULT_CACHE", "ensure_micro_base", "micro_base_path", "shipped_base"]

DEFAULT_CACHE = Path(os.environ.get("IGA_CACHE", ".iga_cache")) / "bases"


def micro_base_path(
    cfg: MicroBaseConfig, *, cache_dir: str | os.PathLike | None = None, domains_dir: str | None = None
) -> Path:
    """Where the base for ``cfg`` lives: keyed by the config, the vocabulary and every domain file's text."""
    from iga.isomers.domains import load_domains
    from iga.models.word_tokenizer import domain_texts

    domains = load_domains(domains_dir)
    # version 2: the step backpropagates in two length-sorted halves (same gradient, other rounding)
    key = stable_hash({"config": keyed_config(cfg), "domains": domain_texts(domains), "version": 2})
    return Path(cache_dir or DEFAULT_CACHE) / f"micro-{cfg.student}-{key}"


def shipped_base(name: str) -> Path | None:
    """The base shipped with the package under ``name`` (the cache folder's name), if there is one.

    The default base (``MicroBaseConfig()``) takes ~18 minutes on 2 cores, longer than the whole demo may take;
    the package ships it and its parent (the base below its polish phase, :func:`parent_config`), trained by
    ``iga pretrain --regime micro`` (each ``base.json`` records how and when). Its
    folder name holds the hash of the config and of every domain file, so a change to either (a domain edited, a
    new default) makes it unused: the base is then trained here, and ``tests/models/test_micro_base.py`` fails
    until the shipped copy is rebuilt (``make shipped-base``).
    """
    from importlib import resources

    folder = resources.files("iga.models") / "shipped" / name
    path = Path(str(folder))
    return path if (path / BASE_MARKER).is_file() else None


def ensure_micro_base(
    cfg: MicroBaseConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    domains_dir: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Path, bool]:
    """The cached base for ``cfg``: the cache's, else the shipped copy (copied into the cache), else trained now
    (into a ``.partial`` folder, then renamed; an interrupted build resumes from the checkpoint it left there).
    Returns ``(path, trained_now)``."""
    import shutil

    path = micro_base_path(cfg, cache_dir=cache_dir, domains_dir=domains_dir)
    if (path / BASE_MARKER).exists():
        return path, False
    tmp = path.with_name(path.name + ".partial")
    shipped = shipped_base(path.name)
    if cfg.polish_steps and shipped is None:
        parent, _ = ensure_micro_base(
            parent_config(cfg), cache_dir=cache_dir, domains_dir=domains_dir, progress=progress
        )
        shutil.rmtree(tmp, ignore_errors=True)
        polish_micro_base(cfg, parent, tmp, domains_dir=domains_dir, progress=progress)
        if path.exists():  # a concurrent builder finished first; keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, path)
        return path, True
    if shipped is not None or not (tmp / CHECKPOINT).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
    if shipped is not None:
        shutil.copytree(shipped, tmp)
        if not path.exists():
            os.replace(tmp, path)
        return path, False
    train_micro_base(cfg, tmp, domains_dir=domains_dir, progress=progress)
    if path.exists():  # a concurrent builder finished first; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, path)
    return path, True
