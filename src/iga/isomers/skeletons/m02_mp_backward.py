"""M02 MP_BACKWARD (IsoDeduce, bool), micro regime: does a fact lead to the asked atom through one-step rules?

A chain of ``depth`` rules from the fact, plus ``distractors`` unrelated rules, shown in shuffled order. The CoT
chains **backward** from the question: each step finds the one rule whose consequent is the atom just written and
copies its antecedent (a look-up), until an atom that no rule concludes; the last step says whether that atom is
the given fact. Half of the answers are ``no``: the question sits on a distractor rule, or the fact is a
distractor's antecedent. The checker computes the forward closure of the fact instead.
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


def _atom(i: int) -> Ref:
    return Ref("atoms", i)


class MPBackward(Skeleton):
    id = "M02_mp_backward"
    family = "IsoDeduce"
    answer_type = "bool"
    title = "micro: modus ponens chain, answered by backward chaining"
    suite = "micro"
    spec = TemplateSpec(
        questions={"ask": slots("q")},
        premises={"rule": slots("p", "q"), "fact": slots("p")},
        steps={"need": slots("p", "q"), "given": slots("p"), "missing": slots("p")},
        pools={"atoms": 9},
        narration={"so": slots("p")},
        default_steps={"need": "{q} needs {p}", "given": "{p} is given", "missing": "{p} is not given"},
    )
    regimes = make_regimes(
        train=Knobs(depth=(2, 3), distractors=(1, 1)),
        ood_depth=Knobs(depth=(4, 5), distractors=(1, 1)),
    )
    bounds = Knobs(depth=(1, 5), distractors=(0, 1))

    def sample(self, rng: HashRng, knobs: Knobs) -> tuple[dict, dict]:
        depth = rng.randint(*knobs.depth)
        n_dis = rng.randint(*knobs.distractors)
        atoms = rng.sample(range(depth + 2 + 2 * n_dis), depth + 1 + 2 * n_dis + 1)
        chain, rest = atoms[: depth + 1], atoms[depth + 1 :]
        rules = [[chain[i], chain[i + 1]] for i in range(depth)]
        distractor_rules = [[rest[2 * j], rest[2 * j + 1]] for j in range(n_dis)]
        spare = rest[-1]  # an atom in no rule: the fact of a "no" problem without distractor rules
        yes = rng.bernoulli(0.5)
        fact, query = chain[0], chain[-1]
        kind = "yes"
        if not yes:
            if distractor_rules and rng.bernoulli(0.5):
                kind, query = "query_on_distractor", distractor_rules[0][1]
            else:
                kind, fact = "fact_off_chain", distractor_rules[0][0] if distractor_rules else spare
        shown = rng.shuffle(rules + distractor_rules)
        params = {"rules": shown, "fact": fact, "query": query, "kind": kind}
        return params, difficulty_record(knobs, depth=depth, distractors=n_dis, premise_order="random")

    def solve(self, params: dict) -> Solution:
        rules = params["rules"]
        premises = [Sentence("rule", {"p": _atom(p), "q": _atom(q)}) for p, q in rules]
        premises.append(Sentence("fact", {"p": _atom(params["fact"])}))
        concludes = {q: p for p, q in rules}
        steps, atom = [], params["query"]
        while atom in concludes:
            steps.append(Step("need", (atom,), concludes[atom], {"q": _atom(atom), "p": _atom(concludes[atom])}))
            atom = concludes[atom]
        given = atom == params["fact"]
        steps.append(Step("given" if given else "missing", (atom,), given, {"p": _atom(atom)}))
        answer = "yes" if given else "no"
        query = Sentence("ask", {"q": _atom(params["query"])})
        return Solution(tuple(premises), query, tuple(steps), answer, label_space=("yes", "no"))

    def check(self, params: dict) -> str:
        known, grew = {params["fact"]}, True
        while grew:
            new = {q for p, q in params["rules"] if p in known} - known
            known, grew = known | new, bool(new)
        return "yes" if params["query"] in known else "no"

    def narrative(self, params: dict) -> tuple[Sentence, ...]:
        """The rules and the fact, then every atom the fact leads to, in order (the base's plain text)."""
        out = [Sentence("rule", {"p": _atom(p), "q": _atom(q)}) for p, q in params["rules"]]
        out.append(Sentence("fact", {"p": _atom(params["fact"])}))
        follows = {p: q for p, q in params["rules"]}
        atom = params["fact"]
        while atom in follows:
            atom = follows[atom]
            out.append(Sentence("so", {"p": _atom(atom)}))
        return tuple(out)
