"""Per-row losses of :mod:`iga.gradients.per_sample` (Fishr's per-sample gradients are checked against brute force
in tests/algorithms/test_baselines_fishr.py)."""

from __future__ import annotations

import torch

from iga.gradients import per_domain_token_loss
from iga.gradients.per_sample import per_row_losses
from iga.gradients.testing import domain_major_batch, tiny_lora_llama

K = 3


def test_row_losses_average_to_the_domain_losses():
    model = tiny_lora_llama(num_layers=1, seed=0)
    batch = domain_major_batch(num_domains=K, rows_per_domain=[2, 3, 2], ragged=True, seed=4)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses = per_domain_token_loss(logits, batch["labels"], batch["domain_ids"], K)
    rows = per_row_losses(logits, batch["labels"], batch["domain_ids"], K)
    means = torch.stack([rows[batch["domain_ids"] == k].mean() for k in range(K)])
    torch.testing.assert_close(means, losses, rtol=1e-13, atol=0)
