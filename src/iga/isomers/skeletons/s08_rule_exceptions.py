"""S08 RULE_EXCEPTIONS (IsoDeduce, bool): a default rule with nested exceptions; the most specific one wins.

Layer 0 is the default ("normally, X may ..."); layer ``i`` applies to individuals with attributes ``A1..Ai``
and reverses layer ``i-1``. The individual holds a random subset of the attributes (plus irrelevant ones), so the
answer depends on the longest *prefix* it holds, not on how many it holds. The checker lists every rule whose
condition the individual meets and takes the one with the most specific (largest) condition.
"""

from __future__ import annotations

from iga.isomers.instance import Join, Ref, Sentence, Step
from iga.isomers.rng import HashRng
from iga.isomers.skeletons.base import (
    PREMISE_ORDERS,
    Knobs,
    Skeleton,
    Solution,
    TemplateSpec,
    difficulty_record,
    make_regimes,
    order_indices,
    slots,
)

_STEP = slots("name", "attr")


class RuleExceptions(Skeleton):
    id = "S08_rule_exceptions"
    family = "IsoDeduce"
    answer_type = "bool"
    title = "default rule with nested exceptions (specificity priority)"
    spec = TemplateSpec(
        questions={"ask": slots("name")},
        premises={
            "default_pos": slots(),
            "default_neg": slots(),
            "rule_pos": slots("attrs"),
            "rule_neg": slots("attrs"),
            "fact": slots("name", "attrs"),
            "fact_plain": slots("name"),
        },
        steps={
            "default_pos": slots("name"),
            "default_neg": slots("name"),
            "apply_pos": _STEP,
            "apply_neg": _STEP,
            "stop_pos": _STEP,
            "stop_neg": _STEP,
        },
        pools={"attrs": 6, "names": 1},
    )
    regimes = make_regimes(
        train=Knobs(depth=(1, 2), distractors=(0, 2), premise_order=PREMISE_ORDERS, negation_rate=0.5),
        ood_depth=Knobs(depth=(3, 4), distractors=(1, 2), premise_order=PREMISE_ORDERS, negation_rate=0.5),
    )
    bounds = Knobs(depth=(1, 4), distractors=(0, 2), premise_order=PREMISE_ORDERS, negation_rate=1.0)

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        d = rng.randint(*knobs.depth)
        held = [i for i in range(d) if rng.bernoulli(0.6)]  # attributes A1..Ad are indices 0..d-1
        n_distractors = rng.randint(*knobs.distractors)
        held = rng.shuffle(held + list(range(d, d + n_distractors)))  # plus attributes no rule mentions
        order = rng.choice(knobs.premise_order)
        params = {
            "depth": d,
            "default": not rng.bernoulli(knobs.negation_rate),
            "held": held,
            "order": order_indices(rng, d + 2, order),
        }
        return params, difficulty_record(knobs, depth=d, distractors=n_distractors, premise_order=order)

    def solve(self, params: dict) -> Solution:
        d, default, held = params["depth"], params["default"], set(params["held"])
        name = Ref("names", 0)

        def attr(i: int) -> Ref:
            return Ref("attrs", i)

        def kind(prefix: str, positive: bool) -> str:
            return f"{prefix}_{'pos' if positive else 'neg'}"

        given = [Sentence(kind("default", default))]
        for layer in range(1, d + 1):
            positive = default if layer % 2 == 0 else not default
            given.append(
                Sentence(kind("rule", positive), {"attrs": Join(tuple(attr(i) for i in range(layer)))})
            )
        attrs = tuple(attr(i) for i in params["held"])
        given.append(
            Sentence("fact", {"name": name, "attrs": Join(attrs)})
            if attrs
            else Sentence("fact_plain", {"name": name})
        )
        premises = tuple(given[i] for i in params["order"])

        verdict = default
        steps = [Step(kind("default", default), (), "yes" if default else "no", {"name": name})]
        for i in range(d):
            if i not in held:
                steps.append(
                    Step(
                        kind("stop", verdict),
                        (f"a{i}",),
                        "yes" if verdict else "no",
                        {"name": name, "attr": attr(i)},
                    )
                )
                break
            verdict = not verdict
            steps.append(
                Step(
                    kind("apply", verdict),
                    (f"a{i}",),
                    "yes" if verdict else "no",
                    {"name": name, "attr": attr(i)},
                )
            )
        answer = "yes" if verdict else "no"
        return Solution(
            premises, Sentence("ask", {"name": name}), tuple(steps), answer, label_space=("yes", "no")
        )

    def check(self, params: dict) -> str:
        d, default, held = params["depth"], params["default"], set(params["held"])
        rules = [(frozenset(), default)]
        rules += [
            (frozenset(range(layer)), default if layer % 2 == 0 else not default) for layer in range(1, d + 1)
        ]
        applicable = [(cond, positive) for cond, positive in rules if cond <= held]
        best = max(len(cond) for cond, _ in applicable)
        winners = {positive for cond, positive in applicable if len(cond) == best}
        if len(winners) != 1:
            return "invalid:conflict"
        return "yes" if winners.pop() else "no"
