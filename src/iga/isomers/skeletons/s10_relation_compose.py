"""S10 RELATION_COMPOSE (IsoRelate, label): CLUTRR-style composition of relations in a hierarchy.

People ``x0..xk`` form a path that goes ``u`` levels up, then ``d`` levels down (``k = u + d``); each premise
says who is directly above whom. The relation of ``xk`` to ``x0`` is the label of ``(u, d)`` in the domain's
table (keys ``u1d0`` = the level above, ``u0d1`` = the level below, ``u1d1`` = same level under the same head,
...). Distinct names are distinct people and everyone has one superior (a tree), so the label is single-valued.
The solver composes left to right through the table; the checker builds the tree from all premises (distractors
included) and measures both people's distance to their lowest common superior.
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

MAX_LEVELS = 3
#: Relation keys of the label table: every (ups, downs) with both <= 3 except the person themself and (3, 3).
RELATION_KEYS = tuple(
    f"u{u}d{d}"
    for u in range(MAX_LEVELS + 1)
    for d in range(MAX_LEVELS + 1)
    if (u, d) not in ((0, 0), (3, 3))
)


def _label(u: int, d: int) -> Ref:
    return Ref("relations", f"u{u}d{d}")


def _name(i: int) -> Ref:
    return Ref("names", i)


class RelationCompose(Skeleton):
    id = "S10_relation_compose"
    family = "IsoRelate"
    answer_type = "label"
    title = "composition of hierarchy relations (CLUTRR)"
    spec = TemplateSpec(
        questions={"ask": slots("source", "target")},
        premises={"above": slots("upper", "lower")},
        steps={"compose": slots("src", "mid", "dst", "rel", "edge", "new")},
        pools={"names": 8},
        tables={"relations": RELATION_KEYS},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(0, 2), premise_order=PREMISE_ORDERS),
        ood_depth=Knobs(depth=(4, 5), distractors=(1, 2), premise_order=PREMISE_ORDERS),
    )
    bounds = Knobs(depth=(2, 5), distractors=(0, 2), premise_order=PREMISE_ORDERS)

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        k = rng.randint(*knobs.depth)
        u = rng.randint(max(0, k - MAX_LEVELS), min(MAX_LEVELS, k))
        edges = [[j + 1, j] for j in range(u)] + [[j, j + 1] for j in range(u, k)]  # [upper, lower]
        n_distractors = rng.randint(*knobs.distractors)
        for extra in range(
            n_distractors
        ):  # a new subordinate of someone on the path: no shortcut, no ambiguity
            edges.append([rng.randint(0, k), k + 1 + extra])
        order = rng.choice(knobs.premise_order)
        params = {"ups": u, "downs": k - u, "edges": edges, "order": order_indices(rng, len(edges), order)}
        return params, difficulty_record(knobs, depth=k, distractors=n_distractors, premise_order=order)

    def solve(self, params: dict) -> Solution:
        u, d = params["ups"], params["downs"]
        k = u + d
        premises = tuple(
            Sentence("above", {"upper": _name(params["edges"][i][0]), "lower": _name(params["edges"][i][1])})
            for i in params["order"]
        )
        ups, downs = (1, 0) if u else (0, 1)
        steps = []
        for j in range(1, k):
            edge = (1, 0) if j < u else (0, 1)
            new = (ups + edge[0], downs + edge[1])
            steps.append(
                Step(
                    "compose",
                    (f"u{ups}d{downs}", f"u{edge[0]}d{edge[1]}"),
                    f"u{new[0]}d{new[1]}",
                    {
                        "src": _name(0),
                        "mid": _name(j),
                        "dst": _name(j + 1),
                        "rel": _label(ups, downs),
                        "edge": _label(*edge),
                        "new": _label(*new),
                    },
                )
            )
            ups, downs = new
        answer = f"u{u}d{d}"
        return Solution(
            premises,
            Sentence("ask", {"source": _name(0), "target": _name(k)}),
            tuple(steps),
            answer,
            answer_surface=_label(u, d),
            label_space=tuple(Ref("relations", key) for key in RELATION_KEYS),
        )

    def check(self, params: dict) -> str:
        superior: dict[int, int] = {}
        for upper, lower in params["edges"]:
            if lower in superior:
                return "invalid:two superiors"
            superior[lower] = upper

        def chain_up(person: int) -> list[int]:
            chain = [person]
            while chain[-1] in superior:
                chain.append(superior[chain[-1]])
            return chain

        source, target = 0, params["ups"] + params["downs"]
        up_from_source, up_from_target = chain_up(source), chain_up(target)
        common = next(p for p in up_from_source if p in up_from_target)
        return f"u{up_from_source.index(common)}d{up_from_target.index(common)}"
