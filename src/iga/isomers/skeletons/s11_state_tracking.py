"""S11 STATE_TRACKING (IsoState, int): items moved between containers; how many end up in one of them?

Each step records both containers' counts before and after one transfer (bAbI / "tracking shuffled objects").
The checker simulates individual items (each with an identity) moving between lists and counts at the end.
"""

from __future__ import annotations

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


def _box(i: int) -> Ref:
    return Ref("containers", i)


class StateTracking(Skeleton):
    id = "S11_state_tracking"
    family = "IsoState"
    answer_type = "int"
    title = "counts after a sequence of transfers"
    spec = TemplateSpec(
        questions={"ask": slots("box")},
        premises={"initial": slots("box", "n"), "move": slots("n", "src", "dst")},
        steps={"move": slots("n", "src", "dst", "src_before", "src_after", "dst_before", "dst_after")},
        pools={"containers": 4},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), width=(2, 3), num_range=(1, 12)),
        ood_depth=Knobs(depth=(4, 6), width=(3, 4), num_range=(1, 20)),
    )
    bounds = Knobs(depth=(1, 10), width=(2, 4), num_range=(1, 999))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        lo, hi = knobs.num_range
        width = rng.randint(*knobs.width)
        counts = [rng.randint(lo, hi) for _ in range(width)]
        initial = list(counts)
        moves = []
        for _ in range(rng.randint(*knobs.depth)):
            src = rng.choice([i for i in range(width) if counts[i] > 0])
            dst = rng.choice([i for i in range(width) if i != src])
            n = rng.randint(1, min(counts[src], max(1, hi // 2)))
            counts[src] -= n
            counts[dst] += n
            moves.append([src, dst, n])
        # ask about a container the last move touched half of the time, any container otherwise
        ask = rng.choice(moves[-1][:2]) if rng.bernoulli(0.5) else rng.randint(0, width - 1)
        params = {"initial": initial, "moves": moves, "ask": ask}
        return params, difficulty_record(knobs, depth=len(moves), width=width)

    def solve(self, params: dict) -> Solution:
        counts = list(params["initial"])
        premises = [Sentence("initial", {"box": _box(i), "n": c}) for i, c in enumerate(counts)]
        steps = []
        for src, dst, n in params["moves"]:
            premises.append(Sentence("move", {"n": n, "src": _box(src), "dst": _box(dst)}))
            before = counts[src], counts[dst]
            counts[src] -= n
            counts[dst] += n
            steps.append(
                Step(
                    "move",
                    (f"k{src}", f"k{dst}", n),
                    [counts[src], counts[dst]],
                    {
                        "n": n,
                        "src": _box(src),
                        "dst": _box(dst),
                        "src_before": before[0],
                        "src_after": counts[src],
                        "dst_before": before[1],
                        "dst_after": counts[dst],
                    },
                )
            )
        ask = params["ask"]
        return Solution(tuple(premises), Sentence("ask", {"box": _box(ask)}), tuple(steps), str(counts[ask]))

    def check(self, params: dict) -> str:
        boxes: list[list[int]] = []
        serial = 0
        for count in params["initial"]:
            boxes.append(list(range(serial, serial + count)))
            serial += count
        for src, dst, n in params["moves"]:
            if len(boxes[src]) < n:
                return "invalid:moving more than a container holds"
            for _ in range(n):
                boxes[dst].append(boxes[src].pop())
        return str(len(boxes[params["ask"]]))
