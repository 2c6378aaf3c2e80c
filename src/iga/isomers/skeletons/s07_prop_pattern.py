"""S07 PROP_PATTERN (IsoDeduce, tri): a chain of conditionals, one known fact, one queried statement.

With rules ``p0 -> p1 -> ... -> pk`` and the fact "``pj`` holds" or "``pj`` does not hold", the query about ``pq``
is *true* by modus ponens (fact true, ``q > j``), *false* by modus tollens (fact false, ``q < j``), and *unknown*
otherwise - affirming the consequent and denying the antecedent are the invalid patterns that punish shortcut
learners (LogicBench). The checker enumerates every truth assignment consistent with all premises.
"""

from __future__ import annotations

from itertools import product

from iga.isomers.instance import Ref, Sentence, Step
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

_PAIR = slots("p", "q")


class PropPattern(Skeleton):
    id = "S07_prop_pattern"
    family = "IsoDeduce"
    answer_type = "tri"
    title = "modus ponens / tollens chains and invalid patterns (true/false/unknown)"
    spec = TemplateSpec(
        questions={"ask": slots("p")},
        premises={"rule": _PAIR, "fact_true": slots("p"), "fact_false": slots("p")},
        steps={"mp": _PAIR, "mt": _PAIR, "undetermined_true": _PAIR, "undetermined_false": _PAIR},
        pools={"statements": 9},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(0, 1), premise_order=PREMISE_ORDERS),
        ood_depth=Knobs(depth=(4, 6), distractors=(1, 2), premise_order=PREMISE_ORDERS),
    )
    bounds = Knobs(depth=(1, 6), distractors=(0, 2), premise_order=PREMISE_ORDERS)

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        k = rng.randint(*knobs.depth)
        pattern = rng.choice(("mp", "mt", "unknown"))
        j, q = rng.sample(range(k + 1), 2)
        if pattern == "mp":
            j, q, holds = min(j, q), max(j, q), True
        elif pattern == "mt":
            j, q, holds = max(j, q), min(j, q), False
        else:  # affirming the consequent (fact true upstream query) or denying the antecedent
            holds = j > q
        rules = [[i, i + 1] for i in range(k)]
        n_distractors = rng.randint(*knobs.distractors)
        for d in range(n_distractors):  # a rule from an unrelated statement into the chain
            rules.append([k + 1 + d, rng.randint(0, k)])
        order = rng.choice(knobs.premise_order)
        params = {
            "depth": k,
            "rules": rules,
            "fact": [j, holds],
            "query": q,
            "order": order_indices(rng, len(rules) + 1, order),
        }
        return params, difficulty_record(knobs, depth=k, distractors=n_distractors, premise_order=order)

    def solve(self, params: dict) -> Solution:
        (j, holds), q = params["fact"], params["query"]

        def prop(i: int) -> Ref:
            return Ref("statements", i)

        given = [Sentence("rule", {"p": prop(a), "q": prop(b)}) for a, b in params["rules"]]
        given.append(Sentence("fact_true" if holds else "fact_false", {"p": prop(j)}))
        premises = tuple(given[i] for i in params["order"])
        if holds and q > j:
            steps = [
                Step("mp", (f"p{i}", f"p{i + 1}"), f"p{i + 1}", {"p": prop(i), "q": prop(i + 1)})
                for i in range(j, q)
            ]
            answer = "true"
        elif not holds and q < j:
            steps = [
                Step("mt", (f"p{i - 1}", f"p{i}"), f"not p{i - 1}", {"p": prop(i - 1), "q": prop(i)})
                for i in range(j, q, -1)
            ]
            answer = "false"
        else:
            op = "undetermined_true" if holds else "undetermined_false"
            steps = [Step(op, (f"p{j}", f"p{q}"), "unknown", {"p": prop(j), "q": prop(q)})]
            answer = "unknown"
        return Solution(
            premises,
            Sentence("ask", {"p": prop(q)}),
            tuple(steps),
            answer,
            label_space=("true", "false", "unknown"),
        )

    def check(self, params: dict) -> str:
        n = 1 + max(max(r) for r in params["rules"])
        (j, holds), q = params["fact"], params["query"]
        seen = set()
        for world in product((False, True), repeat=n):
            if world[j] == holds and all(not world[a] or world[b] for a, b in params["rules"]):
                seen.add(world[q])
        if not seen:
            return "invalid:inconsistent"
        return "unknown" if len(seen) == 2 else ("true" if seen.pop() else "false")
