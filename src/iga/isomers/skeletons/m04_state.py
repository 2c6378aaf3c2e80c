"""M04 STATE (IsoState, int), micro regime: two kinds of things added and removed; how many of one at the end?

Each CoT step writes the whole state after one operation, the other kind first and the **asked** kind last; the
changed kind's count is written as its arithmetic (``2 + 3 = 5``), the unchanged one is copied from the line
before. So the asked count is always the last number written, and the final look-up step copies it: every step is
local. (Written changed-kind-first, the prototype's final look-up of the asked kind stayed near chance: measured in
docs/student-recipes.md.) The checker replays the operations on a multiset instead.
"""

from __future__ import annotations

from collections import Counter

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

_START_MAX = 9
_STEP = slots("other", "other_count", "item", "item_count")


def _kind(i: int) -> Ref:
    return Ref("kinds", i)


class State(Skeleton):
    id = "M04_state"
    family = "IsoState"
    answer_type = "int"
    title = "micro: counts of two kinds after additions and removals"
    suite = "micro"
    spec = TemplateSpec(
        questions={"ask": slots("item")},
        premises={
            "initial": slots("x", "a", "y", "b"),
            "add": slots("item", "n"),
            "remove": slots("item", "n"),
        },
        steps={"state": _STEP, "look": slots("item", "n")},
        pools={"kinds": 2},
        narration={"now": slots("x", "a", "y", "b")},
        default_steps={
            "state": "{other} {other_count} and {item} {item_count}",
            "look": "{item} is {n}",
        },
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), num_range=(1, 5)),
        ood_depth=Knobs(depth=(4, 5), num_range=(1, 5)),
    )
    bounds = Knobs(depth=(1, 6), num_range=(1, 9))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        counts = [rng.randint(0, _START_MAX), rng.randint(0, _START_MAX)]
        initial, ops = list(counts), []
        for _ in range(rng.randint(*knobs.depth)):
            kind = rng.randint(0, 1)
            op = "remove" if counts[kind] >= lo and rng.bernoulli(0.5) else "add"
            n = rng.randint(lo, hi if op == "add" else min(hi, counts[kind]))
            counts[kind] += n if op == "add" else -n
            ops.append([op, kind, n])
        params = {"initial": initial, "ops": ops, "ask": rng.randint(0, 1)}
        return params, difficulty_record(knobs, depth=len(ops), width=2)

    def _premises(self, params: dict) -> list[Sentence]:
        a, b = params["initial"]
        return [Sentence("initial", {"x": _kind(0), "a": a, "y": _kind(1), "b": b})]

    def solve(self, params: dict) -> Solution:
        counts, ask = list(params["initial"]), params["ask"]
        premises, steps = self._premises(params), []
        for op, kind, n in params["ops"]:
            premises.append(Sentence(op, {"item": _kind(kind), "n": n}))
            before = counts[kind]
            counts[kind] += n if op == "add" else -n
            shown = {k: str(counts[k]) for k in (0, 1)}
            shown[kind] = f"{before} {'+' if op == 'add' else '-'} {n} = {counts[kind]}"
            slots_ = {"other": _kind(1 - ask), "other_count": shown[1 - ask]}
            slots_ |= {"item": _kind(ask), "item_count": shown[ask]}
            steps.append(Step("state", (op, kind, before, n), list(counts), slots_))
        steps.append(Step("look", (ask,), counts[ask], {"item": _kind(ask), "n": counts[ask]}))
        question = Sentence("ask", {"item": _kind(ask)})
        return Solution(tuple(premises), question, tuple(steps), str(counts[ask]))

    def check(self, params: dict) -> str:
        bag = Counter({0: params["initial"][0], 1: params["initial"][1]})
        for op, kind, n in params["ops"]:
            if op == "remove" and bag[kind] < n:
                return "invalid:removing more than there is"
            bag.update({kind: n if op == "add" else -n})
        return str(bag[params["ask"]])

    def narrative(self, params: dict) -> tuple[Sentence, ...]:
        """The premises, each change followed by the full new state (the base's plain text)."""
        counts, out = list(params["initial"]), self._premises(params)
        for op, kind, n in params["ops"]:
            counts[kind] += n if op == "add" else -n
            out += [Sentence(op, {"item": _kind(kind), "n": n})]
            out += [Sentence("now", {"x": _kind(0), "a": counts[0], "y": _kind(1), "b": counts[1]})]
        return tuple(out)
