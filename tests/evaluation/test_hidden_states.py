"""Anchor-state collection on a tiny random-init Llama: token mapping, pooling, batching, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iga.evaluation.hidden_states import collect_anchor_states, tokenize_with_anchors
from iga.models.prompting import PromptFormat

FMT = PromptFormat()


def single_forward(model, tokenizer, record: dict) -> tuple[dict, tuple]:
    enc = tokenizer(FMT.text(record), return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return {"ids": enc["input_ids"][0].tolist(), "offsets": offsets}, out.hidden_states


def with_bos(tokenizer):
    """A copy of ``tokenizer`` that prepends BOS, as Llama-family tokenizers do."""
    import copy

    from tokenizers import processors

    tok = copy.deepcopy(tokenizer)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)]
    )
    return tok


@pytest.mark.parametrize("bos", [False, True])
def test_anchor_tokens_are_the_ones_containing_the_anchor_characters(tokenizer, records, bos: bool) -> None:
    tok = with_bos(tokenizer) if bos else tokenizer
    enc, positions, fallbacks = tokenize_with_anchors(tok, records, FMT)
    assert not any(fallbacks)
    assert (enc["input_ids"][:, 0] == tok.bos_token_id).all() == bos
    for i, record in enumerate(records):
        anchors = FMT.anchor_offsets(record)
        offsets = tok(FMT.text(record), return_offsets_mapping=True)["offset_mapping"]
        decoded = [tok.decode([enc["input_ids"][i, p].item()]) for p in positions[i]]
        # step anchors close their line (the newline token); the last one is the token starting "The answer is"
        assert decoded == ["\n"] * (len(anchors) - 1) + ["The"]
        for pos, char in zip(positions[i], anchors, strict=True):
            assert offsets[pos][0] <= char < offsets[pos][1]


def test_pooling_equals_manual_mean_over_anchor_tokens(model, tokenizer, records) -> None:
    states = collect_anchor_states(model, tokenizer, records, batch_size=4)
    assert sorted(states) == [0, 1, 2] and states.n_fallback == 0
    for i, record in enumerate(records):
        info, hidden = single_forward(model, tokenizer, record)
        positions = [
            next(t for t, (s, e) in enumerate(info["offsets"]) if s <= a < e)
            for a in FMT.anchor_offsets(record)
        ]
        for layer in states:
            expected = hidden[layer][0, positions].mean(0).numpy()
            np.testing.assert_allclose(states[layer][i], expected, atol=1e-6, rtol=0)
    assert states[2].dtype == np.float32 and states[2].shape == (4, 32)


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_batching_and_padding_do_not_change_results(kind: str, model, gpt2, tokenizer, records) -> None:
    # GPT-2's absolute positions make it sensitive to the padding side (RoPE in Llama is shift-invariant)
    lm = model if kind == "llama" else gpt2
    one = collect_anchor_states(lm, tokenizer, records, batch_size=1)
    four = collect_anchor_states(lm, tokenizer, records, batch_size=4)
    assert tokenizer.padding_side == "right"  # restored (and right is what the default was)
    for layer in one:
        np.testing.assert_allclose(one[layer], four[layer], atol=1e-5, rtol=0)


def test_records_without_anchors_fall_back_to_last_prompt_token(model, tokenizer, records) -> None:
    bare = [{**records[0], "anchors": []}, {k: v for k, v in records[1].items() if k != "gold_cot"}]
    states = collect_anchor_states(model, tokenizer, bare, layers=[-1])
    assert states.n_fallback == 2 and states.fallback_ids == [bare[0]["id"], bare[1]["id"]]
    last = collect_anchor_states(model, tokenizer, records[:1], layers=[-1], pooling="last_prompt")
    assert last.n_fallback == 0  # chosen on purpose, not a fallback
    np.testing.assert_allclose(states[2][0], last[2][0], atol=1e-6)
    info, hidden = single_forward(model, tokenizer, records[0])
    prompt_char = len(FMT.prompt(records[0])) - 1
    pos = next(t for t, (s, e) in enumerate(info["offsets"]) if s <= prompt_char < e)
    np.testing.assert_allclose(last[2][0], hidden[2][0, pos].numpy(), atol=1e-6)


class NoOffsets:
    """A tokenizer without offset mappings (like a slow tokenizer), delegating everything else."""

    is_fast = False

    def __init__(self, tok) -> None:
        object.__setattr__(self, "_tok", tok)

    def __getattr__(self, name: str):
        return getattr(self._tok, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._tok, name, value)

    def __call__(self, *args, **kwargs):
        assert "return_offsets_mapping" not in kwargs
        return self._tok(*args, **kwargs)


def test_tokenizer_without_offsets_uses_last_prompt_token(model, tokenizer, records) -> None:
    states = collect_anchor_states(model, NoOffsets(tokenizer), records, layers=[1], batch_size=2)
    assert states.n_fallback == len(records)
    last = collect_anchor_states(model, tokenizer, records, layers=[1], pooling="last_prompt")
    np.testing.assert_allclose(states[1], last[1], atol=1e-5)


def test_model_mode_and_layers(model, tokenizer, records) -> None:
    model.train()
    try:
        states = collect_anchor_states(model, tokenizer, records[:2], layers=[0, -1])
        assert model.training  # restored
    finally:
        model.eval()
    assert sorted(states) == [0, 2]
    with pytest.raises(ValueError, match="layers: 3 out of range"):
        collect_anchor_states(model, tokenizer, records[:1], layers=[3])
    with pytest.raises(ValueError, match="pooling: unknown 'mean'"):
        collect_anchor_states(model, tokenizer, records[:1], pooling="mean")


def test_truncation_drops_cut_anchors(model, tokenizer, records) -> None:
    n_prompt = len(tokenizer(FMT.prompt(records[0]))["input_ids"])
    states = collect_anchor_states(model, tokenizer, records[:1], max_length=n_prompt + 1)
    assert states.n_fallback == 1  # every anchor lies beyond the kept tokens


def test_peft_wrapped_model_with_zero_lora_matches_base(model, tokenizer, records) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    base = collect_anchor_states(model, tokenizer, records, layers=[2])
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    wrapped = collect_anchor_states(peft_model, tokenizer, records, layers=[2])
    np.testing.assert_allclose(wrapped[2], base[2], atol=1e-6)  # LoRA B starts at zero
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    changed = collect_anchor_states(peft_model, tokenizer, records, layers=[2])
    assert np.abs(changed[2] - base[2]).max() > 1e-3


def test_anchor_positions_do_not_depend_on_the_padding_side(tokenizer, records) -> None:
    for tok in (tokenizer, NoOffsets(tokenizer)):
        right = tokenize_with_anchors(tok, records)
        tokenizer.padding_side = "left"
        try:
            left = tokenize_with_anchors(tok, records)
        finally:
            tokenizer.padding_side = "right"
        for i in range(len(records)):
            ids_r = [right[0]["input_ids"][i, p].item() for p in right[1][i]]
            ids_l = [left[0]["input_ids"][i, p].item() for p in left[1][i]]
            assert ids_r == ids_l
        assert left[1] != right[1]  # the positions themselves moved with the padding


def test_anchor_offsets_outside_the_cot_are_rejected(tokenizer, records) -> None:
    bad = {**records[0], "anchors": [3, 10_000]}
    with pytest.raises(
        ValueError, match=r"records\[0\] \(id 'I1-math'\): anchors: offset 10000 lies outside"
    ):
        tokenize_with_anchors(tokenizer, [bad])


def test_collected_states_feed_the_lcs_report(model, tokenizer, records) -> None:
    from iga.evaluation.lcs_report import compute_lcs_report

    states = collect_anchor_states(model, tokenizer, records)
    report = compute_lcs_report(
        states,
        [r["instance_id"] for r in records],
        domains=[r["domain"] for r in records],
        train_domains={"math", "medicine"},
        extra_settings={"pooling": states.pooling, "n_fallback": states.n_fallback},
    )
    assert report.layer == 2 and sorted(report.per_layer) == [0, 1, 2]
    assert (report.n_sets, report.n_skipped) == (2, 0)
    assert 0.0 < report.canonical <= 1.0 and report.ood is not None
    assert report.settings["pooling"] == "anchors"
