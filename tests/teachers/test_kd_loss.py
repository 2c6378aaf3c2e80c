"""Logit distillation: hand-computed values, a loop reference, exact gradients, errors, the teacher wrapper (the
sft | kd | mix options of the run's objective: tests/training/test_training_losses.py)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.gradients.testing import random_logits_batch
from iga.teachers.kd import TeacherLogits
from iga.training.losses import per_domain_distillation_loss

LN2, LN3 = math.log(2.0), math.log(3.0)


def hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1 row, 3 tokens, vocab 3. Position 0 predicts label 0, position 1 predicts label 2, position 2 is shifted out.

    At T = 2 the scaled logits are: position 0 teacher [ln 2, 0, 0] → p = [1/2, 1/4, 1/4], student [0, 0, 0] →
    q = [1/3, 1/3, 1/3]; position 1 teacher [0, 0, 0] → p = 1/3 each, student [0, 0, ln 3] → q = [1/5, 1/5, 3/5].
    """
    student = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 2 * LN3], [9.0, -9.0, 4.0]]], dtype=torch.float64)
    teacher = torch.tensor([[[2 * LN2, 0.0, 0.0], [0.0, 0.0, 0.0], [-5.0, 7.0, 1.0]]], dtype=torch.float64)
    labels = torch.tensor([[-100, 0, 2]])
    return student, teacher, labels


# KL(p‖q) at position 0: ½ ln(3/2) + 2 · ¼ ln(3/4) = ½ ln(9/8); at position 1: ⅓ (2 ln(5/3) + ln(5/9)) = ⅓ ln(125/81).
KL_POS = (0.5 * math.log(9 / 8), math.log(125 / 81) / 3)
KD_HAND = 4.0 * (KL_POS[0] + KL_POS[1]) / 2  # T² · mean over the two supervised tokens
# Cross-entropy on the raw logits: position 0 → ln 3; position 1: softmax([0, 0, 2 ln 3]) = [1, 1, 9]/11 → ln(11/9).
CE_HAND = (LN3 + math.log(11 / 9)) / 2


def test_kd_sft_and_mix_match_the_hand_computation():
    student, teacher, labels = hand_batch()
    dom = torch.tensor([0])
    kd = per_domain_distillation_loss(
        student, labels, dom, 1, teacher_logits=teacher, loss="kd", temperature=2.0
    )
    sft = per_domain_distillation_loss(student, labels, dom, 1, loss="sft")
    mix = per_domain_distillation_loss(
        student, labels, dom, 1, teacher_logits=teacher, loss="mix", temperature=2.0, alpha=0.25
    )
    assert kd.dtype == torch.float64
    assert kd.item() == pytest.approx(KD_HAND, rel=1e-14)
    assert sft.item() == pytest.approx(CE_HAND, rel=1e-14)
    assert mix.item() == pytest.approx(0.25 * CE_HAND + 0.75 * KD_HAND, rel=1e-14)


def loop_reference(student, teacher, labels, domains, k: int, temperature: float) -> list[float]:
    """Token by token, vocabulary entry by vocabulary entry, with Python floats."""
    sums, counts = [0.0] * k, [0] * k
    for b in range(student.shape[0]):
        for t in range(student.shape[1] - 1):
            if labels[b, t + 1] == -100:
                continue
            s = [x / temperature for x in student[b, t].tolist()]
            u = [x / temperature for x in teacher[b, t].tolist()]
            zs, zu = sum(math.exp(x) for x in s), sum(math.exp(x) for x in u)
            kl = 0.0
            for v in range(len(s)):
                p, q = math.exp(u[v]) / zu, math.exp(s[v]) / zs
                kl += p * (math.log(p) - math.log(q))
            sums[int(domains[b])] += temperature**2 * kl
            counts[int(domains[b])] += 1
    return [x / n for x, n in zip(sums, counts, strict=True)]


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_kd_matches_a_loop_reference_with_token_pooling(temperature):
    student, teacher, labels, domains = random_logits_batch(0)
    got = per_domain_distillation_loss(
        student, labels, domains, 3, teacher_logits=teacher, loss="kd", temperature=temperature
    )
    expected = loop_reference(student, teacher, labels, domains, 3, temperature)
    assert got.tolist() == pytest.approx(expected, rel=1e-12)


def test_kd_gradient_is_t_times_q_minus_p_over_domain_token_count():
    # d/dz [T² · KL(p‖softmax(z/T))] = T · (q − p) per token, then divided by N_k by the domain mean.
    student, teacher, labels, domains = random_logits_batch(2)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    temperature = 1.5
    loss = per_domain_distillation_loss(
        student, labels, domains, 3, teacher_logits=teacher, loss="kd", temperature=temperature
    )
    loss.sum().backward()
    assert teacher.grad is None  # the teacher is detached
    supervised = torch.zeros(student.shape[:2], dtype=torch.bool)
    supervised[:, :-1] = labels[:, 1:] != -100
    n_k = torch.zeros(3, dtype=torch.float64).index_add(0, domains, supervised.sum(1).double())
    q = torch.softmax(student.detach() / temperature, -1)
    p = torch.softmax(teacher.detach() / temperature, -1)
    expected = temperature * (q - p) * supervised.unsqueeze(-1) / n_k[domains].view(-1, 1, 1)
    torch.testing.assert_close(student.grad, expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.floats(0.25, 8.0), shift=st.floats(-50, 50))
def test_kd_is_nonnegative_zero_on_itself_and_shift_invariant(seed, temperature, shift):
    student, teacher, labels, domains = random_logits_batch(seed)
    kd = per_domain_distillation_loss(
        student, labels, domains, 3, teacher_logits=teacher, loss="kd", temperature=temperature
    )
    assert (kd >= 0).all()
    # softmax ignores a constant added to every logit of a token
    shifted = per_domain_distillation_loss(
        student, labels, domains, 3, teacher_logits=teacher + shift, loss="kd", temperature=temperature
    )
    torch.testing.assert_close(shifted, kd, rtol=1e-9, atol=1e-9)
    itself = per_domain_distillation_loss(
        student, labels, domains, 3, teacher_logits=student.clone(), loss="kd", temperature=temperature
    )
    torch.testing.assert_close(itself, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_teacher_logit_minus_inf_contributes_zero_not_nan():
    student, teacher, labels = hand_batch()
    teacher = teacher.clone()
    teacher[0, 0, 2] = -math.inf  # position 0: p = [2/3, 1/3, 0] at T = 2 (scaled logits ln 2, 0, −inf)
    kd = per_domain_distillation_loss(
        student, labels, torch.tensor([0]), 1, teacher_logits=teacher, loss="kd"
    )
    kl0 = (2 / 3) * math.log((2 / 3) * 3) + (1 / 3) * math.log((1 / 3) * 3)
    assert kd.item() == pytest.approx(4.0 * (kl0 + KL_POS[1]) / 2, rel=1e-14)


def test_low_precision_logits_are_computed_in_float32():
    student, teacher, labels, domains = random_logits_batch(3, dtype=torch.bfloat16)
    kd = per_domain_distillation_loss(student, labels, domains, 3, teacher_logits=teacher, loss="kd")
    assert kd.dtype == torch.float32
    ref = loop_reference(student.float(), teacher.float(), labels, domains, 3, 2.0)
    assert kd.tolist() == pytest.approx(ref, rel=1e-5)


def test_vocabulary_mismatch_requires_the_same_tokenizer():
    student, teacher, labels, domains = random_logits_batch(5)
    with pytest.raises(ValueError, match=r"vocabulary size 6 differs.*same tokenizer required"):
        per_domain_distillation_loss(
            student, labels, domains, 3, teacher_logits=torch.zeros(6, 7, 6, dtype=torch.float64), loss="kd"
        )
    with pytest.raises(ValueError, match=r"does not match the student's .* in \(batch, seq\)"):
        per_domain_distillation_loss(student, labels, domains, 3, teacher_logits=teacher[:, :5], loss="mix")


def test_batch_errors_match_the_cross_entropy_ones():
    student, teacher, labels, domains = random_logits_batch(6)
    with pytest.raises(ValueError, match=r"domain_ids must hold values in 0..2"):
        per_domain_distillation_loss(student, labels, domains + 1, 3, teacher_logits=teacher, loss="kd")
    labels = labels.clone()
    labels[domains == 1] = -100
    with pytest.raises(ValueError, match=r"domain\(s\) \[1\] have no supervised token"):
        per_domain_distillation_loss(student, labels, domains, 3, teacher_logits=teacher, loss="kd")


def test_teacher_logits_are_the_frozen_model_logits():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=11,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(config).train()
    ids = torch.randint(0, 11, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    teacher = TeacherLogits(model)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    logits = teacher(ids, mask)
    assert not logits.requires_grad
    torch.testing.assert_close(logits, model(input_ids=ids, attention_mask=mask).logits, rtol=0, atol=0)
    # distilling a model into an identical copy of itself costs nothing
    labels = ids.clone()
    labels[:, :2] = -100
    kd = per_domain_distillation_loss(
        logits.clone(), labels, torch.tensor([0, 1]), 2, teacher_logits=logits, loss="kd"
    )
    assert torch.equal(kd, torch.zeros(2))
