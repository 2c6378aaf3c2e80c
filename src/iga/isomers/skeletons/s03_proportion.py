"""S03 PROPORTION (IsoArith, int): a unit rate scaled to a new amount, then by up to two more factors.

``p`` per ``q`` gives the rate ``p/q`` (an integer by construction); the answer is ``p/q * m * c1 * c2``. The
checker multiplies exact fractions in one product instead of following the steps.
"""

from __future__ import annotations

from fractions import Fraction
from math import prod

from iga.isomers.instance import Ref, Sentence, Step
from iga.isomers.rng import HashRng
from iga.isomers.skeletons.base import (
    Knobs,
    Skeleton,
    Solution,
    TemplateSpec,
    difficulty_record,
    make_regimes,
    order_indices,
    slots,
)

_STEP = slots("a", "b", "out", "item")


class Proportion(Skeleton):
    id = "S03_proportion"
    family = "IsoArith"
    answer_type = "int"
    title = "unit rate, then scale (direct proportion)"
    spec = TemplateSpec(
        questions={"ask": slots("item")},
        premises={
            "rate": slots("p", "q", "item"),
            "target": slots("m", "item"),
            "scale1": slots("c", "item"),
            "scale2": slots("c", "item"),
            "distractor": slots("n"),
        },
        steps={op: _STEP for op in ("unit_rate", "apply", "scale1", "scale2")},
        pools={"items": 1},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(0, 1), num_range=(2, 12)),
        ood_depth=Knobs(depth=(4, 4), distractors=(1, 2), num_range=(5, 30)),
    )
    bounds = Knobs(depth=(2, 4), distractors=(0, 3), num_range=(2, 999), premise_order=("forward", "random"))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        half = max(2, hi // 2)
        q = rng.randint(2, half)
        rate = rng.randint(2, half)
        m = rng.randint(max(2, lo), max(2, hi))
        depth = rng.randint(*knobs.depth)
        order = rng.choice(knobs.premise_order)
        params = {
            "p": rate * q,
            "q": q,
            "m": m,
            "scales": [rng.randint(2, 4) for _ in range(depth - 2)],
            "distractors": [rng.randint(lo, hi) for _ in range(rng.randint(*knobs.distractors))],
            "order": order_indices(rng, depth, order),
        }
        return params, difficulty_record(
            knobs, depth=depth, distractors=len(params["distractors"]), premise_order=order
        )

    def solve(self, params: dict) -> Solution:
        item = Ref("items", 0)
        p, q, m = params["p"], params["q"], params["m"]
        given = [Sentence("rate", {"p": p, "q": q, "item": item}), Sentence("target", {"m": m, "item": item})]
        given += [Sentence(f"scale{i + 1}", {"c": c, "item": item}) for i, c in enumerate(params["scales"])]
        premises = [given[i] for i in params["order"]]
        premises += [Sentence("distractor", {"n": v}) for v in params["distractors"]]
        rate = p // q
        steps = [Step("unit_rate", (p, q), rate, {"a": p, "b": q, "out": rate, "item": item})]
        value = rate * m
        steps.append(Step("apply", (rate, m), value, {"a": rate, "b": m, "out": value, "item": item}))
        for i, c in enumerate(params["scales"]):
            steps.append(
                Step(
                    f"scale{i + 1}",
                    (value, c),
                    value * c,
                    {"a": value, "b": c, "out": value * c, "item": item},
                )
            )
            value *= c
        return Solution(tuple(premises), Sentence("ask", {"item": item}), tuple(steps), str(value))

    def check(self, params: dict) -> str:
        value = Fraction(params["p"], params["q"]) * params["m"] * prod(params["scales"])
        return str(value.numerator) if value.denominator == 1 else f"invalid:{value}"
