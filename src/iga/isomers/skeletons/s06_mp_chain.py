"""S06 MP_CHAIN (IsoDeduce, bool): a ProntoQA-style chain of "every P is Q" rules applied to one individual.

Concepts ``c0..ck`` form the chain; the last rule may be negative ("no P is Q"), branch rules lead off the chain
(``width``) and distractor rules lead into it from concepts the individual does not have. The checker
forward-chains over *all* rules to a fixed point and reads the queried concept's polarity.
"""

from __future__ import annotations

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

_RULE = slots("src", "dst", "a_src", "a_dst")
_FACT = slots("name", "cat", "a_cat")


def _concept(i: int, article: bool = False) -> Ref:
    return Ref("concepts", i, article)


class MPChain(Skeleton):
    id = "S06_mp_chain"
    family = "IsoDeduce"
    answer_type = "bool"
    title = "modus-ponens chain over categories (ProntoQA)"
    spec = TemplateSpec(
        questions={"ask": _FACT},
        premises={"fact": _FACT, "rule_pos": _RULE, "rule_neg": _RULE},
        steps={"hop_pos": _RULE | {"name"}, "hop_neg": _RULE | {"name"}},
        pools={"concepts": 11, "names": 1},
    )
    regimes = make_regimes(
        train=Knobs(
            depth=(2, 3), width=(0, 1), distractors=(0, 1), premise_order=PREMISE_ORDERS, negation_rate=0.5
        ),
        ood_depth=Knobs(
            depth=(4, 6), width=(1, 2), distractors=(1, 2), premise_order=PREMISE_ORDERS, negation_rate=0.5
        ),
    )
    bounds = Knobs(
        depth=(1, 6), width=(0, 2), distractors=(0, 2), premise_order=PREMISE_ORDERS, negation_rate=1.0
    )

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        k = rng.randint(*knobs.depth)
        fresh = k + 1  # next unused concept index
        # rules as [src, dst, negative]; the chain first, so solve() can find it by index
        rules = [[i, i + 1, False] for i in range(k)]
        rules[-1][2] = rng.bernoulli(knobs.negation_rate)
        width = rng.randint(*knobs.width)
        for _ in range(width):
            rules.append([rng.randint(0, k - 1), fresh, rng.bernoulli(knobs.negation_rate)])
            fresh += 1
        n_distractors = rng.randint(*knobs.distractors)
        for _ in range(n_distractors):
            rules.append([fresh, rng.randint(1, k), rng.bernoulli(knobs.negation_rate)])
            fresh += 1
        order = rng.choice(knobs.premise_order)
        params = {"depth": k, "rules": rules, "order": order_indices(rng, 1 + len(rules), order)}
        return params, difficulty_record(
            knobs, depth=k, width=width, distractors=n_distractors, premise_order=order
        )

    def solve(self, params: dict) -> Solution:
        k, rules = params["depth"], params["rules"]
        name = Ref("names", 0)
        given = [Sentence("fact", {"name": name, "cat": _concept(0), "a_cat": _concept(0, True)})]
        for src, dst, negative in rules:
            given.append(Sentence("rule_neg" if negative else "rule_pos", _rule_slots(src, dst)))
        premises = tuple(given[i] for i in params["order"])
        steps = []
        for src, dst, negative in rules[:k]:
            op = "hop_neg" if negative else "hop_pos"
            out = f"not c{dst}" if negative else f"c{dst}"
            steps.append(Step(op, (f"c{src}", f"c{dst}"), out, {"name": name, **_rule_slots(src, dst)}))
        answer = "no" if rules[k - 1][2] else "yes"
        query = Sentence("ask", {"name": name, "cat": _concept(k), "a_cat": _concept(k, True)})
        return Solution(premises, query, tuple(steps), answer, label_space=("yes", "no"))

    def check(self, params: dict) -> str:
        known = {0: True}  # concept -> polarity, for the one individual
        changed = True
        while changed:
            changed = False
            for src, dst, negative in params["rules"]:
                if known.get(src) is True and dst not in known:
                    known[dst] = not negative
                    changed = True
                elif known.get(src) is True and known[dst] != (not negative):
                    return "invalid:contradiction"
        target = params["depth"]
        if target not in known:
            return "invalid:undetermined"
        return "yes" if known[target] else "no"


def _rule_slots(src: int, dst: int) -> dict:
    return {
        "src": _concept(src),
        "dst": _concept(dst),
        "a_src": _concept(src, True),
        "a_dst": _concept(dst, True),
    }
