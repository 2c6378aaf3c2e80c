"""Every registered algorithm runs 3 steps on a tiny PEFT-LoRA Llama through a loop that mirrors the trainer's
contract (plus the ``loss_from_logits`` and ``meta_step`` calls that IRM, Fishr and Fish need): finite loss, LoRA
weights moved, and a checkpoint round trip of the algorithm's state."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

from iga.algorithms import get_algorithm, list_algorithms
from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.testing import domain_major_batch, tiny_lora_llama

K = 3
# Small anneal so that both phases (and the optimizer reset) run within 3 steps.
OPTIONS = {
    "irm": {"anneal_steps": 1, "penalty": 10.0},
    "vrex": {"anneal_steps": 1, "penalty": 10.0},
    "fishr": {"anneal_steps": 1, "penalty": 10.0, "modules": 2},
    "iga_koyama": {"penalty": 10.0},
    "iga": {"tau": 5.0},
}


def _domain_backward(model, batch):
    def run(k: int) -> torch.Tensor:
        rows = batch["domain_ids"] == k
        logits = model(
            input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows]
        ).logits
        ids = torch.zeros(int(rows.sum()), dtype=torch.long)
        loss = per_domain_token_loss(logits, batch["labels"][rows], ids, 1)[0]
        loss.backward()
        return loss.detach()

    return run


def train_steps(name: str, steps: int = 3):
    """The trainer's per-step contract, one micro-batch per step."""
    model = tiny_lora_llama(num_layers=1, dtype=torch.float32, seed=0)
    algorithm = get_algorithm(name)(num_domains=K, **OPTIONS.get(name, {}))
    capture = DomainGradCapture(model, space=algorithm.capture_space) if algorithm.capture_space else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, trainable, capture, lr=1e-2)
    losses = []
    for step in range(steps):
        batch = domain_major_batch(num_domains=K, rows_per_domain=2, seq_len=8, seed=step)
        if algorithm.trainer_call == "meta_step":
            metrics = algorithm.meta_step(_domain_backward(model, batch), step, optimizer=optimizer)
            losses.append(metrics["loss"])
            continue
        ctx = capture.domains(batch["domain_ids"], num_domains=K) if capture else nullcontext()
        with ctx:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            per_domain = per_domain_token_loss(logits, batch["labels"], batch["domain_ids"], K)
            if algorithm.trainer_call == "loss_from_logits":
                loss = algorithm.loss_from_logits(
                    per_domain, logits, batch["labels"], batch["domain_ids"], step
                )
            else:
                loss = algorithm.loss(per_domain, step)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return model, algorithm, optimizer, losses


@pytest.mark.filterwarnings("ignore:iga_koyama. switching attention:RuntimeWarning")
@pytest.mark.parametrize("name", list_algorithms())
def test_every_algorithm_trains_three_steps(name):
    reference = tiny_lora_llama(num_layers=1, dtype=torch.float32, seed=0)
    start = {n: p.detach().clone() for n, p in reference.named_parameters() if "lora_" in n}
    model, algorithm, _, losses = train_steps(name)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses
    after = {n: p.detach() for n, p in model.named_parameters() if "lora_" in n}
    assert after.keys() == start.keys()
    moved = [n for n in start if not torch.equal(start[n], after[n])]
    # Every LoRA factor of the model moved, not just some of them.
    assert len(moved) == len(start), sorted(set(start) - set(moved))[:3]
    # The algorithm's checkpoint state loads back into a fresh instance.
    fresh = get_algorithm(name)(num_domains=K, **OPTIONS.get(name, {}))
    fresh.load_state_dict(algorithm.state_dict())


def test_loss_side_methods_that_need_logits_refuse_plain_loss():
    for name in ("irm", "fishr"):
        with pytest.raises(RuntimeError, match="loss_from_logits"):
            get_algorithm(name)(num_domains=K).loss(torch.ones(K), step=0)
