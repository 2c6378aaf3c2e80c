"""S09 TRANSITIVE_ORDER (IsoRelate, entity): a hidden ranking revealed by pairwise comparisons; who is first/last?

The premises are the ``n - 1`` adjacent comparisons (so the order is fully determined) plus redundant implied
ones (``width``), shown in the chosen order. The solver composes the chain from the top (or bottom) one link per
step; the checker counts the linear extensions of the stated comparisons by dynamic programming over subsets,
requires exactly one, and reads its first or last element.
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


def _name(i: int) -> Ref:
    return Ref("names", i)


class TransitiveOrder(Skeleton):
    id = "S09_transitive_order"
    family = "IsoRelate"
    answer_type = "entity"
    title = "total order from pairwise comparisons (first or last)"
    spec = TemplateSpec(
        questions={"top": slots(), "bottom": slots()},
        premises={"above": slots("x", "y")},
        steps={
            "compose_top": slots("x", "y", "z"),
            "conclude_top": slots("x"),
            "compose_bottom": slots("x", "y", "z"),
            "conclude_bottom": slots("x"),
        },
        pools={"names": 8},
    )
    regimes = make_regimes(
        train=Knobs(depth=(3, 4), width=(0, 2), premise_order=PREMISE_ORDERS),
        ood_depth=Knobs(depth=(5, 7), width=(1, 2), premise_order=PREMISE_ORDERS),
    )
    bounds = Knobs(depth=(3, 8), width=(0, 3), premise_order=PREMISE_ORDERS)

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        n = rng.randint(*knobs.depth)
        ranking = rng.shuffle(range(n))  # ranking[0] is the top
        pairs = [[ranking[t], ranking[t + 1]] for t in range(n - 1)]
        implied = [[ranking[s], ranking[t]] for s in range(n) for t in range(s + 2, n)]
        width = min(rng.randint(*knobs.width), len(implied))
        pairs += rng.sample(implied, width)
        order = rng.choice(knobs.premise_order)
        params = {
            "n": n,
            "ranking": ranking,
            "pairs": pairs,
            "ask": rng.choice(("top", "bottom")),
            "order": order_indices(rng, len(pairs), order),
        }
        return params, difficulty_record(knobs, depth=n, width=width, premise_order=order)

    def solve(self, params: dict) -> Solution:
        ranking, ask = params["ranking"], params["ask"]
        premises = tuple(
            Sentence("above", {"x": _name(params["pairs"][i][0]), "y": _name(params["pairs"][i][1])})
            for i in params["order"]
        )
        chain = ranking if ask == "top" else ranking[::-1]
        end = chain[0]
        relation = ">" if ask == "top" else "<"
        steps = [
            Step(
                f"compose_{ask}",
                (f"e{end}", f"e{chain[t]}", f"e{chain[t + 1]}"),
                f"e{end}{relation}e{chain[t + 1]}",
                {"x": _name(end), "y": _name(chain[t]), "z": _name(chain[t + 1])},
            )
            for t in range(1, len(chain) - 1)
        ]
        steps.append(Step(f"conclude_{ask}", (f"e{end}",), f"e{end}", {"x": _name(end)}))
        return Solution(
            premises,
            Sentence(ask),
            tuple(steps),
            f"e{end}",
            answer_surface=_name(end),
            label_space=tuple(_name(i) for i in range(params["n"])),
        )

    def check(self, params: dict) -> str:
        n = params["n"]
        above = [0] * n  # bitmask of items that must come before item i
        for x, y in params["pairs"]:
            above[y] |= 1 << x
        ways = [0] * (1 << n)  # ways[mask]: orderings of the items in mask that respect every comparison
        ways[0] = 1
        for mask in range(1 << n):
            if ways[mask]:
                for i in range(n):
                    if not mask >> i & 1 and above[i] & ~mask == 0:
                        ways[mask | 1 << i] += ways[mask]
        if ways[-1] != 1:
            return f"invalid:{ways[-1]} orders"
        # the unique order: walk the single path of the DP from the full set backwards
        mask, order = (1 << n) - 1, []
        while mask:
            last = next(
                i
                for i in range(n)
                if mask >> i & 1 and ways[mask & ~(1 << i)] and above[i] & ~(mask & ~(1 << i)) == 0
            )
            order.append(last)
            mask &= ~(1 << last)
        order.reverse()
        return f"e{order[0] if params['ask'] == 'top' else order[-1]}"
