"""Atomic file writes and line-numbered JSONL reading.

Every file the library writes goes through :func:`atomic_write_text` (temp file in the same folder, fsync,
``os.replace``), so an interrupted run never leaves a half-written result behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input, reported as ``file:line: field: message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.field, self.detail = file, line, field, message
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (where, field, message) if p]
        super().__init__(": ".join(parts))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    # mkstemp creates 0600 files; give the result the mode a plain open() would have (0666 minus umask).
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (readers see the old file or the new one, never a mix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Binary twin of :func:`atomic_write_text`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def dumps_canonical(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, UTF-8 kept): the form every hash is taken over."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as (pretty) JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write one canonical JSON object per line, atomically."""
    return atomic_write_text(path, "".join(dumps_canonical(r) + "\n" for r in rows))


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; a malformed line raises :class:`InputError` naming file and line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", file=path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"invalid JSON ({e.msg} at column {e.colno})", file=path, line=lineno
                ) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", file=path, line=lineno)
            yield lineno, obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All objects of a JSONL file (see :func:`iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path)]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any, n: int = 16) -> str:
    """Short hex digest of an object's canonical JSON (config hashes, sweep folder names)."""
    return sha256_bytes(dumps_canonical(obj).encode("utf-8"))[:n]
