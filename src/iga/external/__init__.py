"""Data and benchmarks nobody here wrote: reasoning-gym tasks and loaders for public files a user already has.

* :mod:`iga.external.reasoning_gym` — evaluate a student on reasoning-gym tasks that match our families, scored
  with reasoning-gym's own ``score_answer``.
* :mod:`iga.external.rg_isomers` — build isomer sets from reasoning-gym instances where the task exposes enough
  structure (``basic_arithmetic``).
* :mod:`iga.external.loaders` — GSM8K JSONL, ProntoQA JSON, FOLIO JSONL and CLUTRR CSV files → our record dicts
  (built by :mod:`iga.external.records`).

Importing this package is cheap: reasoning-gym is imported only when a task is built.
"""


class MissingPackageError(ImportError, ValueError):
    """An optional package is missing (a ``ValueError`` too, so the CLI shows it as one line)."""
