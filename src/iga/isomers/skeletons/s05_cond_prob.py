"""S05 COND_PROB (IsoArith, fraction): Bayes' rule with natural frequencies (a screening test).

Counts are chosen so every frequency is a whole number; the answer is ``TP / (TP + FP)`` in lowest terms. The
checker applies Bayes' formula to probabilities (base rate, sensitivity, false-positive rate) with exact
fractions instead of counting people.
"""

from __future__ import annotations

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

_RATE_STEP = slots("a", "num", "den", "out", "cond")
_PLAIN_STEP = slots("a", "b", "out", "cond")


def fraction_text(value: Fraction) -> str:
    """``"2/3"``; integers plainly (``"1"``)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class CondProb(Skeleton):
    id = "S05_cond_prob"
    family = "IsoArith"
    answer_type = "fraction"
    title = "Bayes with natural frequencies"
    spec = TemplateSpec(
        questions={"ask": slots("cond")},
        premises={
            "population": slots("n", "cond"),
            "base": slots("n", "cond"),
            "sensitivity": slots("num", "den", "cond"),
            "false_positive": slots("num", "den", "cond"),
            "distractor": slots("n"),
        },
        steps={
            "healthy": _PLAIN_STEP,
            "true_pos": _RATE_STEP,
            "false_pos": _RATE_STEP,
            "positives": _PLAIN_STEP,
            "ratio": _PLAIN_STEP,
        },
        pools={"conditions": 1},
    )
    regimes = make_regimes(
        train=Knobs(depth=(5, 5), distractors=(0, 1), num_range=(1, 4)),
        ood_depth=Knobs(depth=(5, 5), distractors=(1, 2), num_range=(3, 10)),
    )
    bounds = Knobs(depth=(5, 5), distractors=(0, 3), num_range=(1, 50))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        den = rng.choice((2, 4, 5, 10))
        fden = rng.choice((5, 10, 20))
        params = {
            "sick": den * rng.randint(lo, hi),
            "healthy": fden * rng.randint(max(2, lo), max(2, 2 * hi)),
            "sensitivity": [rng.randint(1, den - 1), den],
            "false_positive": [rng.randint(1, min(3, fden - 1)), fden],
            "distractors": [rng.randint(2, 40) for _ in range(rng.randint(*knobs.distractors))],
        }
        return params, difficulty_record(knobs, depth=5, distractors=len(params["distractors"]))

    def solve(self, params: dict) -> Solution:
        cond = Ref("conditions", 0)
        sick, healthy = params["sick"], params["healthy"]
        n = sick + healthy
        (num, den), (fnum, fden) = params["sensitivity"], params["false_positive"]
        premises = [
            Sentence("population", {"n": n, "cond": cond}),
            Sentence("base", {"n": sick, "cond": cond}),
            Sentence("sensitivity", {"num": num, "den": den, "cond": cond}),
            Sentence("false_positive", {"num": fnum, "den": fden, "cond": cond}),
        ]
        premises += [Sentence("distractor", {"n": v}) for v in params["distractors"]]
        tp = sick // den * num
        fp = healthy // fden * fnum
        pos = tp + fp
        answer = fraction_text(Fraction(tp, pos))
        steps = (
            Step("healthy", (n, sick), healthy, {"a": n, "b": sick, "out": healthy, "cond": cond}),
            Step(
                "true_pos", (sick, num, den), tp, {"a": sick, "num": num, "den": den, "out": tp, "cond": cond}
            ),
            Step(
                "false_pos",
                (healthy, fnum, fden),
                fp,
                {"a": healthy, "num": fnum, "den": fden, "out": fp, "cond": cond},
            ),
            Step("positives", (tp, fp), pos, {"a": tp, "b": fp, "out": pos, "cond": cond}),
            Step("ratio", (tp, pos), answer, {"a": tp, "b": pos, "out": answer, "cond": cond}),
        )
        return Solution(tuple(premises), Sentence("ask", {"cond": cond}), steps, answer)

    def check(self, params: dict) -> str:
        prior = Fraction(params["sick"], params["sick"] + params["healthy"])
        sens = Fraction(*params["sensitivity"])
        fpr = Fraction(*params["false_positive"])
        return fraction_text(prior * sens / (prior * sens + (1 - prior) * fpr))
