"""S04 INCL_EXCL (IsoArith, int): inclusion-exclusion over two or three overlapping groups.

``depth`` picks the variant: 2 = two groups, "at least one"; 3 = two groups, "none"; 4 = three groups,
"at least one"; 5 = three groups, "none". The sampler draws the size of every Venn region; the solver only sees
the totals a reader sees, and the checker builds the actual member sets from the regions and counts them.
"""

from __future__ import annotations

from itertools import combinations

from iga.isomers.instance import Join, Ref, Sentence, Step
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

_LETTERS = "ABC"


def _regions(n_sets: int) -> list[str]:
    """Venn regions as the letters of the groups an element belongs to ("" = none)."""
    return ["".join(c) for r in range(n_sets + 1) for c in combinations(_LETTERS[:n_sets], r)]


def _size(regions: dict[str, int], groups: str) -> int:
    """Members of every group in ``groups`` (e.g. "AB" = in A and in B)."""
    return sum(n for region, n in regions.items() if set(groups) <= set(region))


class InclExcl(Skeleton):
    id = "S04_incl_excl"
    family = "IsoArith"
    answer_type = "int"
    title = "inclusion-exclusion over two or three groups"
    spec = TemplateSpec(
        questions={"union": slots("props_or", "props_and"), "neither": slots("props_or", "props_and")},
        premises={
            "universe": slots("n"),
            "single": slots("prop", "n"),
            "pair": slots("prop1", "prop2", "n"),
            "triple": slots("prop1", "prop2", "prop3", "n"),
            "distractor": slots("n"),
        },
        steps={
            "add_singles": slots("expr", "out"),
            "add_pairs": slots("expr", "out"),
            "sub_pairs": slots("a", "b", "out"),
            "add_triple": slots("a", "b", "out"),
            "sub_from_total": slots("a", "b", "out"),
        },
        pools={"traits": 3},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(0, 1), num_range=(1, 9), premise_order=("forward", "random")),
        ood_depth=Knobs(
            depth=(4, 5), distractors=(0, 1), num_range=(1, 12), premise_order=("forward", "random")
        ),
    )
    bounds = Knobs(depth=(2, 5), distractors=(0, 3), num_range=(1, 999), premise_order=("forward", "random"))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        depth = rng.randint(*knobs.depth)
        n_sets = 2 if depth <= 3 else 3
        order = rng.choice(knobs.premise_order)
        regions = {region or "none": rng.randint(max(2, lo), max(2, hi)) for region in _regions(n_sets)}
        n_given = 1 + n_sets + len(list(combinations(range(n_sets), 2))) + (n_sets == 3)
        params = {
            "sets": n_sets,
            "ask": "union" if depth % 2 == 0 else "neither",
            "regions": regions,
            "distractors": [rng.randint(lo, hi) for _ in range(rng.randint(*knobs.distractors))],
            "order": order_indices(rng, n_given, order),
        }
        return params, difficulty_record(
            knobs, depth=depth, width=n_sets, distractors=len(params["distractors"]), premise_order=order
        )

    def solve(self, params: dict) -> Solution:
        n_sets, regions = (
            params["sets"],
            {("" if k == "none" else k): v for k, v in params["regions"].items()},
        )
        letters = _LETTERS[:n_sets]
        prop = {c: Ref("traits", i) for i, c in enumerate(letters)}
        total = sum(regions.values())
        singles = [_size(regions, c) for c in letters]
        pairs = [(a, b, _size(regions, a + b)) for a, b in combinations(letters, 2)]
        given = [Sentence("universe", {"n": total})]
        given += [
            Sentence("single", {"prop": prop[c], "n": v}) for c, v in zip(letters, singles, strict=True)
        ]
        given += [Sentence("pair", {"prop1": prop[a], "prop2": prop[b], "n": v}) for a, b, v in pairs]
        if n_sets == 3:
            triple = _size(regions, "ABC")
            given.append(
                Sentence("triple", {"prop1": prop["A"], "prop2": prop["B"], "prop3": prop["C"], "n": triple})
            )
        premises = [given[i] for i in params["order"]]
        premises += [Sentence("distractor", {"n": v}) for v in params["distractors"]]

        steps = []
        s = sum(singles)
        steps.append(
            Step("add_singles", tuple(singles), s, {"expr": " + ".join(map(str, singles)), "out": s})
        )
        pair_sizes = [v for _, _, v in pairs]
        if n_sets == 2:
            union = s - pair_sizes[0]
            steps.append(
                Step("sub_pairs", (s, pair_sizes[0]), union, {"a": s, "b": pair_sizes[0], "out": union})
            )
        else:
            t = sum(pair_sizes)
            steps.append(
                Step("add_pairs", tuple(pair_sizes), t, {"expr": " + ".join(map(str, pair_sizes)), "out": t})
            )
            steps.append(Step("sub_pairs", (s, t), s - t, {"a": s, "b": t, "out": s - t}))
            union = s - t + triple
            steps.append(Step("add_triple", (s - t, triple), union, {"a": s - t, "b": triple, "out": union}))
        answer = union
        if params["ask"] == "neither":
            answer = total - union
            steps.append(
                Step("sub_from_total", (total, union), answer, {"a": total, "b": union, "out": answer})
            )
        refs = tuple(prop[c] for c in letters)
        query = Sentence(params["ask"], {"props_or": Join(refs, "or"), "props_and": Join(refs, "and")})
        return Solution(tuple(premises), query, tuple(steps), str(answer))

    def check(self, params: dict) -> str:
        members: dict[str, set[int]] = {c: set() for c in _LETTERS[: params["sets"]]}
        everyone: set[int] = set()
        for region, count in params["regions"].items():
            for _ in range(count):
                element = len(everyone)
                everyone.add(element)
                for c in "" if region == "none" else region:
                    members[c].add(element)
        union = set().union(*members.values())
        return str(len(union) if params["ask"] == "union" else len(everyone - union))
