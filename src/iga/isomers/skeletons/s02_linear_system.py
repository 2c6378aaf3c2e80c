"""S02 LINEAR_SYSTEM (IsoArith, int): two kinds, a total count and a total weight ("chickens and rabbits").

``a + b = n`` and ``w_low*a + w_high*b = total``; the solver uses the classic "suppose all were light" steps,
the checker tries every split of ``n`` and insists that exactly one fits.
"""

from __future__ import annotations

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

_STEP = slots("a", "b", "out", "low", "high")


class LinearSystem(Skeleton):
    id = "S02_linear_system"
    family = "IsoArith"
    answer_type = "int"
    title = "two unknowns from a total count and a total weight"
    spec = TemplateSpec(
        questions={"ask": slots("kind")},
        premises={
            "total_count": slots("n", "low", "high"),
            "weight": slots("kind", "w"),
            "total_weight": slots("total", "low", "high"),
            "distractor": slots("n"),
        },
        steps={op: _STEP for op in ("all_low", "excess", "gap", "count_high", "count_low")},
        pools={"kinds": 2},
    )
    regimes = make_regimes(
        train=Knobs(depth=(4, 5), distractors=(0, 1), num_range=(4, 15), premise_order=("forward", "random")),
        ood_depth=Knobs(
            depth=(4, 5), distractors=(1, 2), num_range=(16, 40), premise_order=("forward", "random")
        ),
    )
    bounds = Knobs(depth=(4, 5), distractors=(0, 3), num_range=(2, 999), premise_order=("forward", "random"))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        n = rng.randint(max(2, lo), max(2, hi))
        wmax = 6 if hi <= 20 else 12
        w_low = rng.randint(1, wmax - 1)
        w_high = rng.randint(w_low + 1, wmax)
        high = rng.randint(1, n - 1)
        # depth 4 asks for the heavy kind (4 steps), depth 5 for the light one (one more subtraction)
        depth = rng.randint(*knobs.depth)
        order = rng.choice(knobs.premise_order)
        params = {
            "n": n,
            "w": [w_low, w_high],
            "total": w_low * (n - high) + w_high * high,
            "ask": "low" if depth == 5 else "high",
            "distractors": [rng.randint(lo, hi) for _ in range(rng.randint(*knobs.distractors))],
            "order": order_indices(rng, 4, order),
        }
        return params, difficulty_record(
            knobs, depth=depth, distractors=len(params["distractors"]), premise_order=order
        )

    def solve(self, params: dict) -> Solution:
        low, high = Ref("kinds", 0), Ref("kinds", 1)
        n, (w_low, w_high), total = params["n"], params["w"], params["total"]
        given = [
            Sentence("total_count", {"n": n, "low": low, "high": high}),
            Sentence("weight", {"kind": low, "w": w_low}),
            Sentence("weight", {"kind": high, "w": w_high}),
            Sentence("total_weight", {"total": total, "low": low, "high": high}),
        ]
        premises = [given[i] for i in params["order"]]
        premises += [Sentence("distractor", {"n": v}) for v in params["distractors"]]

        def step(op: str, a: int, b: int, out: int) -> Step:
            return Step(op, (a, b), out, {"a": a, "b": b, "out": out, "low": low, "high": high})

        all_low = n * w_low
        excess = total - all_low
        gap = w_high - w_low
        n_high = excess // gap
        steps = [
            step("all_low", n, w_low, all_low),
            step("excess", total, all_low, excess),
            step("gap", w_high, w_low, gap),
            step("count_high", excess, gap, n_high),
        ]
        answer = n_high
        if params["ask"] == "low":
            answer = n - n_high
            steps.append(step("count_low", n, n_high, answer))
        asked = low if params["ask"] == "low" else high
        return Solution(tuple(premises), Sentence("ask", {"kind": asked}), tuple(steps), str(answer))

    def check(self, params: dict) -> str:
        n, (w_low, w_high), total = params["n"], params["w"], params["total"]
        fits = [a for a in range(n + 1) if w_low * a + w_high * (n - a) == total]
        if len(fits) != 1:
            return f"invalid:{len(fits)} solutions"
        return str(fits[0] if params["ask"] == "low" else n - fits[0])
