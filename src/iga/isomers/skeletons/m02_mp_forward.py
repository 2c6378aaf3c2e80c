"""M02 MP_FORWARD (IsoDeduce, bool), micro regime: does a fact lead to the asked atom through one-step rules?

A chain of ``depth`` rules from the fact, plus ``distractors`` unrelated rules, shown in shuffled order. The CoT
chains **forward** from the fact and restates one rule per step (``p then q``): the step starts with the atom the
previous step ended on, and its consequent is copied from the one rule whose antecedent that atom is (the bigram
"atom + rule word" is unique in the premises, as ``x >`` is in M03). It stops at an atom that no rule continues;
the last step says whether the asked atom was derived. Half of the answers are ``no``: the question sits on a
distractor rule, or the fact is a distractor's antecedent. The checker computes the closure as a fixed point.

(Backward chaining, ``q needs p``, copies the token *before* the matched consequent; a from-scratch base left it at
chance in 10 minutes - measured in docs/student-recipes.md - as the prototype's forward CoT whose wording did not
mirror the rule's.)
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


class MPForward(Skeleton):
    id = "M02_mp_forward"
    family = "IsoDeduce"
    answer_type = "bool"
    title = "micro: modus ponens chain, answered by forward chaining"
    suite = "micro"
    spec = TemplateSpec(
        questions={"ask": slots("q")},
        premises={"rule": slots("p", "q"), "fact": slots("p")},
        steps={"hop": slots("p", "q"), "derived": slots("q"), "underived": slots("q")},
        pools={"atoms": 9},
        narration={"so": slots("p")},
        default_steps={"hop": "{p} then {q}", "derived": "{q} is derived", "underived": "{q} is not derived"},
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
        follows = {p: q for p, q in rules}
        steps, atom, derived = [], params["fact"], {params["fact"]}
        while atom in follows:
            steps.append(Step("hop", (atom,), follows[atom], {"p": _atom(atom), "q": _atom(follows[atom])}))
            atom = follows[atom]
            derived.add(atom)
        query = params["query"]
        found = query in derived
        steps.append(Step("derived" if found else "underived", (query,), found, {"q": _atom(query)}))
        answer = "yes" if found else "no"
        question = Sentence("ask", {"q": _atom(query)})
        return Solution(tuple(premises), question, tuple(steps), answer, label_space=("yes", "no"))

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
