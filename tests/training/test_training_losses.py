"""The run's per-domain objective (sft | kd | mix): ``sft`` is the token cross-entropy itself; bad options are named.
The KD term is tested against hand computations and references in tests/teachers/test_kd_loss.py."""

from __future__ import annotations

import pytest
import torch

from iga.gradients.losses import per_domain_token_loss
from iga.gradients.testing import random_logits_batch
from iga.training.losses import per_domain_distillation_loss


def test_sft_is_exactly_per_domain_token_loss():
    for dtype in (torch.float32, torch.float64):
        student, teacher, labels, domains = random_logits_batch(1, dtype=dtype)
        got = per_domain_distillation_loss(student, labels, domains, 3, teacher_logits=teacher, loss="sft")
        assert torch.equal(got, per_domain_token_loss(student, labels, domains, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "kd"}, "teacher_logits: required for loss='kd'"),
        ({"loss": "mix"}, "teacher_logits: required for loss='mix'"),
        ({"loss": "kl", "teacher": True}, "allowed: sft, kd, mix"),
        ({"loss": "kd", "teacher": True, "temperature": 0.0}, "temperature: must be > 0"),
        ({"loss": "mix", "teacher": True, "alpha": 1.5}, r"alpha: must be in \[0, 1\]"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    student, teacher, labels, domains = random_logits_batch(4)
    use_teacher = kwargs.pop("teacher", False)
    with pytest.raises(ValueError, match=match):
        per_domain_distillation_loss(
            student, labels, domains, 3, teacher_logits=teacher if use_teacher else None, **kwargs
        )


def test_docstring_examples():
    import doctest

    from iga.training import losses

    result = doctest.testmod(losses, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
