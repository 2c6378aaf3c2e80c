"""Batched greedy generation (left padding, stopping, prompt removal) and scoring of the completions."""

from __future__ import annotations

import copy
import re
import sys
import types
from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from iga.evaluation.generation import evaluate_records, generate_completions, truncate_completion
from iga.models.prompting import PromptFormat

FMT = PromptFormat()


def test_truncate_completion_examples() -> None:
    assert truncate_completion("Step 1: x.\nThe answer is 5.\nQ: next\n") == "Step 1: x.\nThe answer is 5."
    assert truncate_completion("The answer is 5.") == "The answer is 5."  # stopped by EOS: nothing to cut
    assert truncate_completion("Step 1: no answer\nyet\n") == "Step 1: no answer\nyet\n"


@given(
    prefix=st.text().filter(lambda s: "The answer is" not in s),
    answer=st.text().filter(lambda s: "\n" not in s),
    rest=st.text(),
)
def test_truncate_completion_keeps_everything_up_to_the_answer_line(
    prefix: str, answer: str, rest: str
) -> None:
    text = f"{prefix}The answer is{answer}\n{rest}"
    assert truncate_completion(text) == f"{prefix}The answer is{answer}"
    assert truncate_completion(prefix) == prefix


def test_batched_greedy_equals_unbatched_and_excludes_prompt(model, tokenizer, records) -> None:
    batch = records[:3]  # prompts of different lengths, so the batch of 3 is left-padded
    one = generate_completions(model, tokenizer, batch, batch_size=1, max_new_tokens=12, progress=False)
    three = generate_completions(model, tokenizer, batch, batch_size=3, max_new_tokens=12, progress=False)
    assert one == three
    assert tokenizer.padding_side == "right"  # restored after generating with left padding
    for record, completion in zip(batch, one, strict=True):
        enc = tokenizer(FMT.prompt(record), return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        expected = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert completion == truncate_completion(expected)
        assert len(completion) > 0 and not completion.startswith(FMT.prompt(record))


class ScriptedLM(torch.nn.Module):
    """Stands in for a causal LM: ``generate`` replays a fixed token script per prompt, one token per step,
    honouring EOS and the stopping criteria it is given, and padding finished rows (as HF ``generate`` does)."""

    def __init__(self, tokenizer, scripts: dict[str, str]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self.tokenizer = tokenizer
        self.scripts = {p: tokenizer(c)["input_ids"] + [tokenizer.eos_token_id] for p, c in scripts.items()}
        self.calls: list[dict] = []

    def generate(self, input_ids, attention_mask, stopping_criteria, max_new_tokens, pad_token_id, **kwargs):
        self.calls.append(
            {
                "padding_side": self.tokenizer.padding_side,
                "mask": attention_mask.clone(),
                "pad": pad_token_id,
                **kwargs,
            }
        )
        prompts = [
            self.tokenizer.decode(row[m.bool()]) for row, m in zip(input_ids, attention_mask, strict=True)
        ]
        scripts = [self.scripts[p] for p in prompts]
        ids, done = input_ids, torch.zeros(len(prompts), dtype=torch.bool)
        for t in range(max_new_tokens):
            nxt = torch.tensor(
                [pad_token_id if d else s[t] for s, d in zip(scripts, done.tolist(), strict=True)]
            )
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= stopping_criteria(ids, None) | (nxt == kwargs["eos_token_id"])
            if done.all():
                break
        self.calls[-1]["output"] = ids
        return ids


def fake_answers_module() -> types.ModuleType:
    """A minimal stand-in for ``iga.isomers.answers`` (strict: exact 'The answer is N.' line; flexible: last int)."""
    from dataclasses import dataclass

    @dataclass
    class Extracted:
        text: str
        value: object
        method: str

    @dataclass
    class Result:
        correct: bool
        extracted: Extracted | None
        failed_extraction: bool

    def score_completion(completion: str, record, *, mode: str = "strict") -> Result:
        pattern = r"The answer is (-?\d+)\.$" if mode == "strict" else r"(-?\d+)\D*$"
        match = re.search(pattern, completion)
        if not match:
            return Result(False, None, True)
        value = int(match.group(1))
        return Result(value == int(record["answer"]), Extracted(match.group(1), value, mode), False)

    module = types.ModuleType("iga.isomers.answers")
    module.score_completion = score_completion
    return module


@pytest.fixture
def scripted(tokenizer, records):
    scripts = {
        FMT.prompt(
            records[0]
        ): "Step 1: 2 + 3 = 5.\nStep 2: 5 * 2 = 10.\nThe answer is 10.\nQ: What is 1 + 1?\nA: 2",
        FMT.prompt(
            records[1]
        ): "Step 1: 2 + 3 = 5 pills.\nThe answer is 5 pills",  # ends at EOS; wrong, no period
        FMT.prompt(records[2]): "Step 1: 4 + 4 = 8.\nso 8",  # no answer line: strict extraction fails
    }
    return ScriptedLM(tokenizer, scripts)


def test_stops_at_answer_line_or_eos_and_pads_left(scripted, tokenizer, records) -> None:
    completions = generate_completions(scripted, tokenizer, records[:3], batch_size=3, progress=False)
    assert completions == [
        "Step 1: 2 + 3 = 5.\nStep 2: 5 * 2 = 10.\nThe answer is 10.",
        "Step 1: 2 + 3 = 5 pills.\nThe answer is 5 pills",
        "Step 1: 4 + 4 = 8.\nso 8",
    ]
    call = scripted.calls[0]
    assert call["padding_side"] == "left" and call["do_sample"] is False and call["use_cache"] is True
    assert call["pad"] == tokenizer.pad_token_id
    assert call["mask"][:, -1].all() and not call["mask"][:, 0].all()  # real tokens flush right
    # the stopping criterion ended generation at the answer line's newline, before the script's "Q: …" tail
    raw = tokenizer.decode(call["output"][0, call["mask"].shape[1] :])
    assert raw.endswith("The answer is 10.\n")


def test_evaluate_records_scores_both_modes(scripted, tokenizer, records, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "iga.isomers.answers", fake_answers_module())
    # progress=True (the default) must stay silent and harmless when stderr is not a terminal
    scores = evaluate_records(scripted, tokenizer, records[:3], batch_size=2)
    assert [s.id for s in scores] == [r["id"] for r in records[:3]]
    first, second, third = scores
    assert first.strict.correct and first.flexible.correct and first.strict.value == 10
    assert not second.strict.correct and second.strict.failed_extraction
    assert not second.flexible.correct and second.flexible.value == 5
    assert third.strict.failed_extraction and third.flexible.correct
    assert first.to_dict()["strict"] == {"correct": True, "failed_extraction": False, "text": "10", "value": 10,
                                         "method": "strict"}  # fmt: skip


def test_scoring_with_the_real_answer_extractor(scripted, tokenizer, records) -> None:
    pytest.importorskip("iga.isomers.answers")
    first, second, third = evaluate_records(scripted, tokenizer, records[:3], progress=False)
    assert first.strict.correct and first.flexible.correct and first.strict.value == 10
    assert not second.strict.correct and not second.strict.failed_extraction and second.strict.value == 5
    assert third.strict.failed_extraction and third.flexible.correct and third.flexible.value == 8


def test_tokenizer_without_pad_token_is_padded_with_eos_and_restored(model, tokenizer, records) -> None:
    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    completions = generate_completions(
        model, tok, records[:2], batch_size=2, max_new_tokens=4, progress=False
    )
    assert len(completions) == 2 and tok.pad_token is None


def test_mode_score_serialises_fractions() -> None:
    from iga.evaluation.scores import ModeScore

    assert ModeScore(True, False, "3/6", Fraction(1, 2)).to_dict()["value"] == "1/2"
    assert ModeScore(True, False, "4", Fraction(4)).to_dict()["value"] == "4"


def test_bad_arguments_are_named(model, tokenizer, records) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_completions(model, tokenizer, records, max_new_tokens=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        generate_completions(model, tokenizer, records, batch_size=0, progress=False)
