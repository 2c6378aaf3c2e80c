"""Which local Hugging Face folder a ``--student`` / ``base_dir`` names: a folder as it is, or a real-student preset
converted once into the cache (:mod:`iga.models.gguf`).

>>> resolve_student("no-such-student")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown student 'no-such-student': not an existing folder and not a preset; presets: smollm2-135m ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from iga.models.gguf import REAL_STUDENTS, ensure_real_student, presets_line


def resolve_student(
    name_or_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """A local HF folder for ``name_or_path``: an existing folder as is, or a preset's cache (converted once).

    A name that is neither raises ``ValueError`` listing the presets.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if str(name_or_path) in REAL_STUDENTS:
        return ensure_real_student(str(name_or_path), cache_dir=cache_dir, log=log)
    raise ValueError(
        f"unknown student {str(name_or_path)!r}: not an existing folder and not a preset; "
        f"presets: {presets_line()}"
    )
