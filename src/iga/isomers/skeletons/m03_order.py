"""M03 ORDER (IsoRelate, entity), micro regime: which of 3-4 things ranks first (or last)?

The adjacent comparisons of a hidden ranking, in shuffled order. The CoT restates them in chain order from the
top, one ``x > y`` per step (each a copy of one premise), and the answer is the chain's first or last entity.
The checker enumerates every permutation consistent with the premises and requires exactly one.
"""

from __future__ import annotations

from itertools import pairwise, permutations

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

POOL = 6


def _thing(i: int) -> Ref:
    return Ref("things", i)


class Order(Skeleton):
    id = "M03_order"
    family = "IsoRelate"
    answer_type = "entity"
    title = "micro: first or last of a ranking given by adjacent comparisons"
    suite = "micro"
    spec = TemplateSpec(
        questions={"top": slots(), "bottom": slots()},
        premises={"above": slots("x", "y")},
        steps={"link": slots("x", "y")},
        pools={"things": POOL},
        narration={"extremes": slots("top", "bottom")},
        default_steps={"link": "{x} > {y}"},
    )
    regimes = make_regimes(train=Knobs(depth=(3, 4)), ood_depth=Knobs(depth=(5, 6)))
    bounds = Knobs(depth=(2, 6))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        n = rng.randint(*knobs.depth)
        # n of the pool's first POOL indices: the ranking structures of 3-4 things are few (312), and the build
        # wants distinct parameters per instance; which pool slots are used changes only the words drawn.
        ranking = rng.sample(range(POOL), n)  # ranking[0] ranks first
        pairs = rng.shuffle([[ranking[t], ranking[t + 1]] for t in range(n - 1)])
        params = {"ranking": ranking, "pairs": pairs, "ask": rng.choice(("top", "bottom"))}
        return params, difficulty_record(knobs, depth=n, premise_order="random")

    def solve(self, params: dict) -> Solution:
        ranking = params["ranking"]
        premises = tuple(Sentence("above", {"x": _thing(x), "y": _thing(y)}) for x, y in params["pairs"])
        steps = tuple(
            Step("link", (a, b), None, {"x": _thing(a), "y": _thing(b)}) for a, b in pairwise(ranking)
        )
        end = ranking[0] if params["ask"] == "top" else ranking[-1]
        return Solution(
            premises,
            Sentence(params["ask"]),
            steps,
            f"t{end}",
            answer_surface=_thing(end),
            label_space=tuple(_thing(i) for i in sorted(ranking)),
        )

    def check(self, params: dict) -> str:
        things = sorted({i for pair in params["pairs"] for i in pair})
        orders = [p for p in permutations(things) if all(p.index(x) < p.index(y) for x, y in params["pairs"])]
        if len(orders) != 1:
            return f"invalid:{len(orders)} rankings fit the premises"
        return f"t{orders[0][0] if params['ask'] == 'top' else orders[0][-1]}"

    def narrative(self, params: dict) -> tuple[Sentence, ...]:
        """The comparisons as given, again from the top down, then which thing ranks first and which last (the
        base's plain text). The top-down restatement is the chain of thought's walk in the domain's own words, so
        the base meets that look-up in every domain's sentence shapes, not only the neutral ``x > y``."""
        ranking = params["ranking"]
        out = [Sentence("above", {"x": _thing(x), "y": _thing(y)}) for x, y in params["pairs"]]
        out += [Sentence("above", {"x": _thing(x), "y": _thing(y)}) for x, y in pairwise(ranking)]
        out.append(Sentence("extremes", {"top": _thing(ranking[0]), "bottom": _thing(ranking[-1])}))
        return tuple(out)
