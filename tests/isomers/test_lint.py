"""Vocabulary leakage lint: no held-out content word in any training lexicon or template."""

from __future__ import annotations

from dataclasses import replace

from iga.isomers.lint import SHARED_WORDS, content_words, leaks


def test_shipped_held_out_domains_do_not_leak_into_training_domains(domains):
    assert leaks(domains) == {}


def test_the_lint_catches_a_planted_leak(domains):
    medicine = domains["medicine"]
    section = medicine.sections["S01_arith_chain"]
    planted = replace(
        section, steps={**section.steps, "add": "{a} mg + {b} mg = {out} mg in the escrow account"}
    )
    patched = {
        **domains,
        "medicine": replace(medicine, sections={**medicine.sections, "S01_arith_chain": planted}),
    }
    assert leaks(patched) == {"finance": {"account": ["medicine"], "escrow": ["medicine"]}}


def test_content_words_ignore_slots_short_and_shared_words(domains):
    words = content_words(domains["fictional"])
    assert {"wumpus", "blargs", "zorple"} <= words
    assert not words & SHARED_WORDS
    assert "item" not in words and all(len(w) >= 4 for w in words)
