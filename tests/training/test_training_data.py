import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import DOMAINS, synthetic_records

from iga.training.data import IsomerCollator, aligned_labels, group_isomer_sets, sets_for_step


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


def test_step_order_is_the_hash_keyed_order_across_epochs_and_interleaved_seeds():
    """The cached epoch permutation gives the order the hash keys define (what every recorded run trained on),
    whichever seeds and epochs were asked for before."""
    import hashlib

    def reference(n, per, step, seed):
        def perm(epoch):
            key = lambda i: hashlib.blake2b(f"{seed}|{epoch}|{i}".encode(), digest_size=8).digest()  # noqa: E731
            return sorted(range(n), key=key)

        return [perm(j // n)[j % n] for j in range(step * per, (step + 1) * per)]

    n, per = 7, 3  # batches straddle epochs
    asked = [(step, seed) for step in range(12) for seed in (0, 5, 0)]
    assert [sets_for_step(n, per, step, seed) for step, seed in asked] == [
        reference(n, per, step, seed) for step, seed in asked
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


def test_collator_logic_labels_keep_the_tokens_every_rendering_shares(micro_base):
    from iga.models.tokenizer import load_tokenizer

    tok = load_tokenizer(micro_base)
    sets = group_isomer_sets(synthetic_records(2), DOMAINS)
    batch = IsomerCollator(tok, max_length=128, logic_labels=True)(sets)
    assert "logic_labels" not in IsomerCollator(tok, max_length=128)(sets)
    logic, labels = batch["logic_labels"], batch["labels"]
    kept = logic != -100
    assert torch.equal(logic[kept], labels[kept])  # a subset of the labels, never another token
    for j in range(2):  # set j's rows: j, j + 2, j + 4, j + 6 (domain-major)
        rows = [j + 2 * k for k in range(len(DOMAINS))]
        texts = {tok.decode(batch["input_ids"][r][kept[r]]) for r in rows}
        assert len(texts) == 1  # the same kept tokens in every domain
        text = texts.pop()
        assert "Step" in text and "answer" in text
        assert not any(
            noun in text for noun in ("units", "tablets", "fines", "grams")
        )  # the domains' own words


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.integers(0, 3),
    targets=st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=2, max_size=4),
)
def test_aligned_labels_keep_exactly_the_positions_where_all_members_agree(prompt, targets):
    members = [([7] * prompt + t, [-100] * prompt + t) for t in targets]
    out = aligned_labels(members)
    for labels, target in zip(out, targets, strict=True):
        assert labels[:prompt] == [-100] * prompt
        for i, tok in enumerate(labels[prompt:]):
            agree = len({t[i] for t in targets}) == 1
            assert tok == (target[i] if agree else -100)
    same = aligned_labels([members[0], members[0]])
    assert same == [members[0][1], members[0][1]]  # identical renderings: every target token kept


def test_aligned_labels_need_targets_of_one_length():
    with pytest.raises(
        ValueError, match=r"isomer set 's1': its renderings' targets are \[2, 3\] tokens long"
    ):
        aligned_labels([([1, 2], [1, 2]), ([1, 2, 3], [1, 2, 3])], "s1")
