"""Evaluation: accuracy with typed answers, behavioural consistency and the Logical Consistency Score (LCS).

Array metrics (:mod:`.lcs`, :mod:`.lcs_report`, :mod:`.behaviour`) and tables (:mod:`.accuracy`) need only numpy;
the model-side modules (:mod:`.hidden_states`, :mod:`.generation`) import torch/transformers inside their
functions, so importing this package stays cheap for the CLI.
"""

from iga.evaluation.accuracy import accuracy_table, summarise
from iga.evaluation.behaviour import (
    answer_agreement,
    behavioural_report,
    correctness_variance,
    id_ood_gap,
    set_accuracy,
)
from iga.evaluation.generation import evaluate_records, generate_completions
from iga.evaluation.hidden_states import AnchorStates, collect_anchor_states
from iga.evaluation.lcs import (
    DEFINITIONS,
    lcs_ood,
    lcs_per_layer,
    lcs_ratio,
    logical_consistency,
    permutation_baseline,
)
from iga.evaluation.lcs_report import LCSReport, compute_lcs_report
from iga.evaluation.scores import ModeScore, RecordScore, score_record

__all__ = [
    "DEFINITIONS",
    "AnchorStates",
    "LCSReport",
    "ModeScore",
    "RecordScore",
    "accuracy_table",
    "answer_agreement",
    "behavioural_report",
    "collect_anchor_states",
    "compute_lcs_report",
    "correctness_variance",
    "evaluate_records",
    "generate_completions",
    "id_ood_gap",
    "lcs_ood",
    "lcs_per_layer",
    "lcs_ratio",
    "logical_consistency",
    "permutation_baseline",
    "score_record",
    "set_accuracy",
    "summarise",
]
