"""Isomer sets from reasoning-gym basic_arithmetic: chain parsing and the imported, validated sets."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.external.rg_isomers import NOT_IMPORTABLE, chain_params, import_isomer_sets

_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


@st.composite
def chains(draw):
    """A valid S01 chain: positive integer intermediates, amounts >= 1, factors/divisors >= 2, exact division."""
    x = start = draw(st.integers(1, 500))
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        choices = (
            ["add", "mul"]
            + (["sub"] if x > 1 else [])
            + (["div"] if any(x % d == 0 for d in range(2, 10)) else [])
        )
        op = draw(st.sampled_from(choices))
        if op == "add":
            b = draw(st.integers(1, 99))
        elif op == "sub":
            b = draw(st.integers(1, x - 1))
        elif op == "mul":
            b = draw(st.integers(2, 9))
        else:
            b = draw(st.sampled_from([d for d in range(2, 10) if x % d == 0]))
        x = {"add": x + b, "sub": x - b, "mul": x * b, "div": x // b}[op]
        ops.append([op, b])
    return start, ops, x


def _replay(params: dict) -> int:
    x = params["start"]
    for op, b in params["ops"]:
        x = {"add": x + b, "sub": x - b, "mul": x * b, "div": x // b}[op]
    return x


@given(chains())
def test_a_parenthesised_chain_is_read_back_as_the_chain_that_wrote_it(chain):
    start, ops, value = chain
    expression = str(start)
    for op, b in ops:
        expression = f"({expression} {_SYMBOL[op]} {b})"
    assert chain_params(expression) == {"start": start, "ops": ops, "distractors": []}
    assert eval(expression) == value


@given(chains())
def test_a_flat_expression_is_accepted_only_when_precedence_keeps_it_a_chain(chain):
    start, ops, _ = chain
    flat = " ".join([str(start), *(f"{_SYMBOL[op]} {b}" for op, b in ops)])
    params = chain_params(flat)
    if all(op in ("add", "sub") for op, _ in ops):
        assert params is not None  # no precedence to regroup
    if params is not None:
        assert _replay(params) == eval(flat)


@pytest.mark.parametrize(
    "expression",
    [
        "7 + 3 * 5",
        "3 - 5 + 9",
        "7 / 2",
        "5 + 0",
        "4 * 1",
        "-3 + 4",
        "1.5 + 2",
        "12",
        "abc",
        "2 ** 3",
        "(2 + x) * 3",
    ],
)
def test_expressions_that_are_not_positive_integer_chains_are_skipped(expression):
    assert chain_params(expression) is None


def test_imported_sets_pass_the_file_check_and_share_the_expressions_value(tmp_path):
    pytest.importorskip("reasoning_gym")
    from iga.isomers.check import check_file
    from iga.utils.io import atomic_write_jsonl

    records = import_isomer_sets("reasoning_gym:basic_arithmetic", 5, seed=2, split="ood_surface")
    path = atomic_write_jsonl(tmp_path / "rg.jsonl", records)
    assert check_file(path) == []
    sets = defaultdict(list)
    for r in records:
        sets[r["instance_id"]].append(r)
    assert len(sets) == 5 and all(len(m) == 8 for m in sets.values())  # 4 training + 4 held-out domains
    for members in sets.values():
        expression = members[0]["source"]["expression"]
        assert {m["answer"] for m in members} == {str(eval(expression))}
        assert {m["split"] for m in members} == {"ood_surface"} and len({m["question"] for m in members}) == 8
    assert records == import_isomer_sets("reasoning_gym:basic_arithmetic", 5, seed=2, split="ood_surface")
    indexes = [m[0]["source"]["index"] for m in sets.values()]
    assert indexes == sorted(indexes)


def test_import_options_and_refusals_name_the_field():
    pytest.importorskip("reasoning_gym")
    two = import_isomer_sets("reasoning_gym:basic_arithmetic", 1, seed=0, domains=["math", "finance"])
    assert [r["domain"] for r in two] == ["math", "finance"]
    with pytest.raises(ValueError, match="domains: need at least 2 distinct known domains"):
        import_isomer_sets("reasoning_gym:basic_arithmetic", 1, domains=["math", "astrology"])
    with pytest.raises(ValueError, match="split: must be one of train, val"):
        import_isomer_sets("reasoning_gym:basic_arithmetic", 1, split="test")
    with pytest.raises(ValueError, match=r"n: only [01] of 1 basic_arithmetic items"):
        import_isomer_sets("reasoning_gym:basic_arithmetic", 2, max_draws=1)
    for task, reason in NOT_IMPORTABLE.items():
        with pytest.raises(ValueError, match=f"cannot be imported as isomer sets \\({reason}\\)"):
            import_isomer_sets(f"reasoning_gym:{task}", 1)
