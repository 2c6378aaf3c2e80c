"""The IsoBench record: one rendering of one logical instance in one domain.

Other code (trainer, evaluation, ``iga data check``, external tools) reads these fields by name; change them only
with a ``GENERATOR_VERSION`` bump.
"""

from __future__ import annotations

from typing import Final

GENERATOR_VERSION: Final = "isobench-1"

#: Answer types understood by :mod:`iga.isomers.answers`.
#: ``int``: integer; ``fraction``: exact rational ``a/b`` in lowest terms (integers written plainly);
#: ``bool``: ``yes``/``no``; ``tri``: ``true``/``false``/``unknown``; ``label``: one word/phrase from the record's
#: ``label_space``; ``entity``: one name from the record's ``label_space``.
ANSWER_TYPES: Final = ("int", "fraction", "bool", "tri", "label", "entity")

#: Splits, in the order they are written. ``stress`` holds the stress surfaces (symbolic, counterfactual).
SPLITS: Final = ("train", "val", "id_test", "ood_surface", "ood_depth", "stress")
EVAL_SPLITS: Final = ("val", "id_test", "ood_surface", "ood_depth", "stress")

FAMILIES: Final = ("IsoArith", "IsoDeduce", "IsoRelate", "IsoState")

#: Fields every record carries (generated or imported). Imported records need the ``REQUIRED_FIELDS`` only.
RECORD_FIELDS: Final = (
    "id",  # unique over the whole suite
    "instance_id",  # shared by the members of one isomer set
    "skeleton",  # e.g. "S01_arith_chain"
    "family",  # one of FAMILIES (free text for imported data)
    "domain",  # e.g. "medicine"
    "split",
    "params",  # JSON object: the sampled logical parameters (domain-free)
    "difficulty",  # JSON object: knob values (depth, width, distractors, num_range, premise_order)
    "question",  # rendered problem text (ends with the question itself)
    "gold_cot",  # "Step 1: ...\n...\nStep n: ...\nThe answer is X."
    "answer",  # surface answer in this domain, as a string parseable as answer_type
    "answer_type",  # one of ANSWER_TYPES
    "canonical_answer",  # domain-free answer, identical across the isomer set
    "canonical_trace",  # [{"op": str, "args": [...], "out": ...}, ...], identical across the isomer set
    "anchors",  # character offsets into gold_cot: end of each "Step i:" line, then start of "The answer is"
    "label_space",  # list of allowed answers for label/entity/bool/tri types (else [])
    "shortcut",  # null, or {"text": str, "value": str, "correct": bool}
    "seed",
    "generator_version",
    "teacher_answer",  # only in suites with teacher noise: null, or the wrong final answer written in gold_cot
)

REQUIRED_FIELDS: Final = ("id", "instance_id", "domain", "question", "answer", "answer_type")
