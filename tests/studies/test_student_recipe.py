"""The student-recipe experiment runs end to end on a micro student and its table reads what it wrote."""

from __future__ import annotations

import json

import pytest
import torch

from student_recipe import copy_probe, main, render_table


class _EchoModel(torch.nn.Module):
    """Predicts, at every position, the token that followed the previous occurrence of the current token."""

    def forward(self, ids):
        seq = ids[0].tolist()
        logits = torch.full((1, len(seq), 1000), -1.0)
        for t, tok in enumerate(seq):
            prev = [i for i in range(t) if seq[i] == tok and i + 1 < len(seq)]
            logits[0, t, seq[prev[-1] + 1] if prev else 0] = 1.0
        return type("Out", (), {"logits": logits})()


class _WordTok:
    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, return_tensors=None):
        ids = [self.vocab.setdefault(w, len(self.vocab) + 1) for w in text.split(" ")]
        return {"input_ids": torch.tensor([ids]) if return_tensors else ids}

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return " ".join(inv.get(i, "?") for i in ids)


def test_copy_probe_scores_a_perfect_induction_model_higher_than_a_constant_one():
    records = [{"question": "Ann owns 12 pens. Bob keeps 7 cups. Cid wears 3 hats. How many?"}]
    perfect = copy_probe(_EchoModel(), _WordTok(), records)
    assert perfect["copy_accuracy"] > 0.6 and perfect["copy_digit_accuracy"] == 1.0

    class _Zero(torch.nn.Module):
        def forward(self, ids):
            return type("Out", (), {"logits": torch.zeros(1, ids.shape[1], 1000)})()

    assert copy_probe(_Zero(), _WordTok(), records)["copy_digit_accuracy"] == 0.0


@pytest.mark.slow
def test_recipe_runs_end_to_end_and_renders(tmp_path, capsys):
    out = tmp_path / "recipes"
    main(
        [
            "run",
            "m1",
            "--out",
            str(out),
            "--student",
            "micro",
            "--vocab",
            "400",
            "--steps",
            "3",
            "--batch",
            "4",
            "--seq-len",
            "64",
            "--split-digits",
            "--train-per-skeleton",
            "8",
            "--ft-steps",
            "2",
            "--eval-per-skeleton",
            "1",
        ]
    )
    rec = json.loads((out / "m1" / "recipe.json").read_text())
    assert rec["base"]["pretrain_config"]["split_digits"] is True
    assert 0 <= rec["copy_accuracy"] <= 1 and rec["id_accuracy"] is not None
    assert set(rec["by_skeleton"]) == {
        "S01_arith_chain",
        "S06_mp_chain",
        "S09_transitive_order",
        "S11_state_tracking",
    }
    table = render_table(out)
    assert "| m1 | micro | 3 × 4 × 64 | yes |" in table
    main(["table", str(out), "--write", str(tmp_path / "t.md")])
    assert (tmp_path / "t.md").read_text() == table


def test_recipe_skeletons_default_all_and_codes():
    import argparse

    from student_recipe import DEMO_SKELETONS, recipe_skeletons

    assert recipe_skeletons(argparse.Namespace(skeletons=None)) == list(DEMO_SKELETONS)
    everything = recipe_skeletons(argparse.Namespace(skeletons="all"))
    assert len(everything) == 11 and everything[0] == "S01_arith_chain"
    assert recipe_skeletons(argparse.Namespace(skeletons="S06, s09")) == [
        "S06_mp_chain",
        "S09_transitive_order",
    ]
    with pytest.raises(SystemExit, match="--skeletons: unknown skeleton 'S99'"):
        recipe_skeletons(argparse.Namespace(skeletons="S06,S99"))
