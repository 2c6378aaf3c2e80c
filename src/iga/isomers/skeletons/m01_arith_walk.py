"""M01 ARITH_WALK (IsoArith, int), micro regime: one quantity moved up and down by small steps.

Every chain-of-thought step is one addition or subtraction of two numbers that are both in view (the running
value just written and the operand of the next premise), so a from-scratch student of ~1 M parameters can learn it
in minutes (docs/student-recipes.md). Values stay in ``0..CAP``: every number the regime writes is one token of the
word-level tokenizer. The checker sums the signed operands at once and checks the bounds of every prefix.
"""

from __future__ import annotations

from iga.isomers.instance import Sentence, Step
from iga.isomers.rng import HashRng
from iga.isomers.skeletons.base import (
    Knobs,
    Skeleton,
    Solution,
    TemplateSpec,
    difficulty_record,
    make_regimes,
    slots,
)

#: Largest start value and largest value any step may reach.
START_MAX, CAP = 20, 60
_STEP = slots("a", "b", "out")


class ArithWalk(Skeleton):
    id = "M01_arith_walk"
    family = "IsoArith"
    answer_type = "int"
    title = "micro: a quantity raised and lowered by small steps"
    suite = "micro"
    spec = TemplateSpec(
        questions={"ask": slots()},
        premises={"start": slots("n"), "add": slots("n"), "sub": slots("n")},
        steps={"add": _STEP, "sub": _STEP},
        narration={"now": slots("n")},
        default_steps={"add": "{a} + {b} = {out}", "sub": "{a} - {b} = {out}"},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), num_range=(1, 9)),
        ood_depth=Knobs(depth=(4, 5), num_range=(1, 9)),
    )
    bounds = Knobs(depth=(1, 6), num_range=(1, 20))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        x = start = rng.randint(1, START_MAX)
        ops = []
        for _ in range(rng.randint(*knobs.depth)):
            options = [op for op, ok in (("add", x + lo <= CAP), ("sub", x - lo >= 0)) if ok]
            op = rng.choice(options)
            b = rng.randint(lo, min(hi, CAP - x) if op == "add" else min(hi, x))
            x = x + b if op == "add" else x - b
            ops.append([op, b])
        return {"start": start, "ops": ops}, difficulty_record(knobs, depth=len(ops))

    def solve(self, params: dict) -> Solution:
        x = params["start"]
        premises, steps = [Sentence("start", {"n": x})], []
        for op, b in params["ops"]:
            premises.append(Sentence(op, {"n": b}))
            out = x + b if op == "add" else x - b
            steps.append(Step(op, (x, b), out, {"a": x, "b": b, "out": out}))
            x = out
        return Solution(tuple(premises), Sentence("ask"), tuple(steps), str(x))

    def check(self, params: dict) -> str:
        signed = [params["start"]] + [b if op == "add" else -b for op, b in params["ops"]]
        prefixes = [sum(signed[: i + 1]) for i in range(len(signed))]
        if any(not 0 <= p <= CAP for p in prefixes):
            return f"invalid:a value leaves 0..{CAP}"
        return str(sum(signed))

    def narrative(self, params: dict) -> tuple[Sentence, ...]:
        """The premises, each change followed by the value it leads to (the base's plain text)."""
        x, out = params["start"], [Sentence("start", {"n": params["start"]})]
        for op, b in params["ops"]:
            x = x + b if op == "add" else x - b
            out += [Sentence(op, {"n": b}), Sentence("now", {"n": x})]
        return tuple(out)
