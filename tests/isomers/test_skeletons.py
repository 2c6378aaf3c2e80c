"""Solver vs independent checker over each skeleton's parameter space, plus per-skeleton uniqueness properties."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iga.isomers.errors import GeneratorError
from iga.isomers.instance import Join, Ref
from iga.isomers.rng import HashRng
from iga.isomers.skeletons import all_skeletons, get_skeleton, list_skeletons
from iga.isomers.skeletons.base import Knobs, Solution

SKELETONS = all_skeletons()
IDS = [sk.id for sk in SKELETONS]


@st.composite
def knob_ranges(draw, sk):
    """Any knob ranges inside the skeleton's hard bounds (not only the shipped train/ood ranges)."""

    def span(bounds):
        lo = draw(st.integers(*bounds))
        return (lo, draw(st.integers(lo, bounds[1])))

    b = sk.bounds
    return Knobs(
        depth=span(b.depth),
        width=span(b.width),
        distractors=span(b.distractors),
        num_range=span(b.num_range),
        premise_order=tuple(draw(st.sets(st.sampled_from(b.premise_order), min_size=1))),
        negation_rate=draw(st.floats(0.0, b.negation_rate)),
    )


@pytest.mark.parametrize("sk", SKELETONS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32), index=st.integers(0, 10**6))
def test_solver_agrees_with_independent_checker(sk, data, seed, index):
    knobs = data.draw(knob_ranges(sk))
    params, difficulty = sk.sample(HashRng(seed, sk.id, index), knobs)
    solution = sk.solve(params)
    assert sk.check(params) == solution.answer
    assert solution.steps and all(json.dumps(s.to_json()) for s in solution.steps)
    assert json.loads(json.dumps(params)) == params  # params are plain JSON
    assert knobs.depth[0] <= difficulty["depth"] <= knobs.depth[1]
    if sk.answer_type == "int":
        assert int(solution.answer) >= 0


@pytest.mark.parametrize("sk", SKELETONS, ids=IDS)
@pytest.mark.parametrize("regime", ["train", "ood_depth"])
def test_pools_never_need_more_words_than_the_spec_minimum(sk, regime):
    # a domain that passes validation must be able to render any instance, even at the hard bounds
    widest = replace(
        sk.bounds,
        depth=(sk.bounds.depth[1],) * 2,
        width=(sk.bounds.width[1],) * 2,
        distractors=(sk.bounds.distractors[1],) * 2,
    )
    for knobs in (sk.regimes[regime], widest):
        for i in range(200):
            sol = sk.solve(sk.sample(HashRng(5, sk.id, regime, i), knobs)[0])
            for ref in _refs(sol):
                if isinstance(ref.index, int):
                    assert ref.index < sk.spec.pools[ref.pool], (ref, sk.spec.pools)
                else:
                    assert ref.index in sk.spec.tables[ref.pool]


def _refs(sol: Solution):
    values = [v for s in (*sol.premises, sol.query) for v in s.slots.values()]
    values += [v for step in sol.steps for v in step.slots.values()]
    values += [*sol.label_space, sol.answer_surface]
    for v in values:
        if isinstance(v, Ref):
            yield v
        elif isinstance(v, Join):
            yield from v.items


def test_a_disagreeing_solver_raises_loudly(monkeypatch):
    sk = get_skeleton("S01")
    real = type(sk).solve
    monkeypatch.setattr(type(sk), "solve", lambda self, p: replace(real(self, p), answer="-1"))
    with pytest.raises(GeneratorError, match="solver answer '-1' != checker answer"):
        sk.instance(HashRng(0), sk.regimes["train"])


@pytest.mark.parametrize("code", ["S01", "S02", "S03", "S04", "S05"])
def test_arithmetic_traces_end_in_the_answer(code):
    sk = get_skeleton(code)
    for i in range(100):
        sol = sk.solve(sk.sample(HashRng(1, code, i), sk.regimes["train"])[0])
        assert str(sol.steps[-1].out) == sol.answer


def test_s09_order_is_fully_determined_by_the_premises():
    sk = get_skeleton("S09")
    for i in range(150):
        params, _ = sk.sample(HashRng(2, "S09", i), sk.regimes["train"] if i % 2 else sk.regimes["ood_depth"])
        n = params["n"]
        if n > 6:
            continue
        consistent = [
            p for p in permutations(range(n)) if all(p.index(x) < p.index(y) for x, y in params["pairs"])
        ]
        assert consistent == [tuple(params["ranking"])]  # brute force over every ordering: exactly one
        want = params["ranking"][0] if params["ask"] == "top" else params["ranking"][-1]
        assert sk.solve(params).answer == f"e{want}"


def test_s10_labels_are_single_valued_in_every_domain(domains):
    from iga.isomers.skeletons.s10_relation_compose import RELATION_KEYS

    for d in domains.values():
        table = d.pool("S10_relation_compose", "relations")
        assert sorted(table) == sorted(RELATION_KEYS)
        assert len(set(table.values())) == len(RELATION_KEYS), d.name


def test_every_answer_value_occurs():
    seen: dict[str, set[str]] = {}
    for code in ("S06", "S07", "S08"):
        sk = get_skeleton(code)
        seen[code] = {
            sk.solve(sk.sample(HashRng(4, code, i), sk.regimes["train"])[0]).answer for i in range(300)
        }
    assert seen == {"S06": {"yes", "no"}, "S07": {"true", "false", "unknown"}, "S08": {"yes", "no"}}


def test_registry_order_and_lookup():
    assert list_skeletons()[0] == "S01_arith_chain"
    assert get_skeleton("s06") is get_skeleton("S06_mp_chain")
    assert {sk.family for sk in SKELETONS} == {"IsoArith", "IsoDeduce", "IsoRelate", "IsoState"}
