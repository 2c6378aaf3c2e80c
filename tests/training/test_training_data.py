import pytest
import torch
from train_helpers import DOMAINS, synthetic_records

from iga.training.data import IsomerCollator, group_isomer_sets, sets_for_step


def test_sets_are_complete_and_in_domain_order():
    sets = group_isomer_sets(synthetic_records(3), DOMAINS)
    assert [s.instance_id for s in sets] == ["train-0", "train-1", "train-2"]
    assert all([m["domain"] for m in s.members] == list(DOMAINS) for s in sets)


def test_missing_domain_is_a_clear_error():
    records = [
        r for r in synthetic_records(2) if not (r["instance_id"] == "train-1" and r["domain"] == "law")
    ]
    with pytest.raises(ValueError, match=r"isomer set 'train-1' is missing domain\(s\) \['law'\]"):
        group_isomer_sets(records, DOMAINS)


def test_duplicate_domain_and_empty_split_errors():
    records = synthetic_records(1)
    with pytest.raises(ValueError, match="has domain 'math' twice"):
        group_isomer_sets(records + records[:1], DOMAINS)
    with pytest.raises(ValueError, match="empty split"):
        group_isomer_sets([], DOMAINS)


def test_step_order_is_deterministic_and_covers_every_set_each_epoch():
    n, per = 10, 3
    first_epoch = [i for step in range(4) for i in sets_for_step(n, per, step, seed=1)][:n]
    assert sorted(first_epoch) == list(range(n))
    assert sets_for_step(n, per, 7, seed=1) == sets_for_step(n, per, 7, seed=1)
    assert [sets_for_step(n, per, s, seed=1) for s in range(4)] != [
        sets_for_step(n, per, s, seed=2) for s in range(4)
    ]


def test_collator_is_domain_major_and_masks_prompts(micro_base):
    from iga.models.tokenizer import load_tokenizer

    tok = load_tokenizer(micro_base)
    sets = group_isomer_sets(synthetic_records(2), DOMAINS)
    batch = IsomerCollator(tok, max_length=128)(sets)
    assert batch["domain_ids"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for row in range(batch["input_ids"].shape[0]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        supervised = labels != -100
        # The supervised tokens decode to exactly the gold CoT followed by EOS.
        member = sets[row % 2].members[row // 2]
        assert tok.decode(ids[supervised]) == member["gold_cot"] + tok.eos_token
        assert torch.equal(labels[supervised], ids[supervised])
    with pytest.raises(ValueError, match="above max_length=8"):
        IsomerCollator(tok, max_length=8)(sets)
