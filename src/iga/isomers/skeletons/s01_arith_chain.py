"""S01 ARITH_CHAIN (IsoArith, int): a quantity changed by a chain of + - x / operations (GSM-like).

Intermediates stay positive integers below a cap (rejection, as GSM-Symbolic's ``#conditions``); distractor
sentences carry irrelevant numbers (GSM-IC). The checker rebuilds the whole expression as one nested string and
evaluates it with exact fractions, never touching the solver's running value.
"""

from __future__ import annotations

import ast
from fractions import Fraction

from iga.isomers.instance import Ref, Sentence, Step
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

_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_STEP_SLOTS = slots("a", "b", "out", "item")


class ArithChain(Skeleton):
    id = "S01_arith_chain"
    family = "IsoArith"
    answer_type = "int"
    title = "chain of + - x / on one quantity"
    spec = TemplateSpec(
        questions={"ask": slots("item")},
        premises={
            "start": slots("item", "n"),
            **{op: slots("item", "n") for op in _SYMBOL},
            "distractor": slots("other", "n"),
        },
        steps={op: _STEP_SLOTS for op in _SYMBOL},
        pools={"items": 4},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(0, 1), num_range=(1, 20)),
        ood_depth=Knobs(depth=(4, 5), distractors=(1, 2), num_range=(1, 50)),
    )
    bounds = Knobs(depth=(1, 8), distractors=(0, 3), num_range=(1, 999))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        cap = 5 * hi  # keeps intermediates in a range a tiny student can learn
        fmax = min(9, max(3, hi // 4))
        x = start = rng.randint(max(2, lo), max(2, hi))
        ops = []
        for _ in range(rng.randint(*knobs.depth)):
            divisors = [f for f in range(2, fmax + 1) if x % f == 0]
            options = [
                op
                for op, ok in (
                    ("add", x + lo <= cap),
                    ("sub", x - lo >= 1),
                    ("mul", 2 * x <= cap),
                    ("div", bool(divisors)),
                )
                if ok
            ]
            op = rng.choice(options)
            if op == "add":
                b = rng.randint(lo, min(hi, cap - x))
                x += b
            elif op == "sub":
                b = rng.randint(lo, min(hi, x - 1))
                x -= b
            elif op == "mul":
                b = rng.randint(2, min(fmax, cap // x))
                x *= b
            else:
                b = rng.choice(divisors)
                x //= b
            ops.append([op, b])
        distractors = [
            [rng.randint(0, len(ops)), rng.randint(lo, hi)] for _ in range(rng.randint(*knobs.distractors))
        ]
        params = {"start": start, "ops": ops, "distractors": distractors}
        return params, difficulty_record(knobs, depth=len(ops), distractors=len(distractors))

    def solve(self, params: dict) -> Solution:
        item = Ref("items", 0)
        x = params["start"]
        chunks: list[list[Sentence]] = [[Sentence("start", {"item": item, "n": x})]]
        steps = []
        for op, b in params["ops"]:
            chunks.append([Sentence(op, {"item": item, "n": b})])
            out = {"add": x + b, "sub": x - b, "mul": x * b, "div": x // b}[op]
            steps.append(Step(op, (x, b), out, {"a": x, "b": b, "out": out, "item": item}))
            x = out
        for k, (pos, value) in enumerate(params["distractors"]):
            chunks[pos].append(Sentence("distractor", {"other": Ref("items", k + 1), "n": value}))
        premises = tuple(s for chunk in chunks for s in chunk)
        return Solution(premises, Sentence("ask", {"item": item}), tuple(steps), str(x))

    def check(self, params: dict) -> str:
        expr = str(params["start"])
        for op, b in params["ops"]:
            expr = f"({expr}{_SYMBOL[op]}{b})"
        value = _evaluate(ast.parse(expr, mode="eval").body)
        if value.denominator != 1 or value <= 0:
            return f"invalid:{value}"
        return str(value.numerator)


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    assert isinstance(node, ast.BinOp)
    a, b = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Add):
        return a + b
    if isinstance(node.op, ast.Sub):
        return a - b
    if isinstance(node.op, ast.Mult):
        return a * b
    return a / b
