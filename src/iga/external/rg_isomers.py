"""Isomer sets built from reasoning-gym instances: the logic comes from reasoning-gym, the wording from our domains.

An instance can be imported when the task's metadata pins down the whole logical problem in a form one of our
skeletons takes, so that every domain renders *the same* problem with its own templates, solver trace, gold CoT
and independent checker. Which tasks qualify (``IMPORTABLE`` / ``NOT_IMPORTABLE`` say why):

* ``basic_arithmetic`` — yes. ``metadata["expression"]`` is the full problem. Expressions that are a left-to-right
  chain (``((a op b) op c) …`` under the usual precedence, e.g. ``7 * 3 - 5 + 12``) with positive integer
  intermediates are exactly an ``S01_arith_chain`` instance (start value + operations); others are skipped.
* ``gsm_symbolic`` — no: the metadata holds one template's variables (names, foods, amounts), not a structure our
  skeletons take, and the template id is not part of an item.
* ``syllogism`` — not yet: the premises and conclusion are exposed, but our domains have no lexicon of category
  nouns for categorical syllogisms (no skeleton renders them).
* ``propositional_logic`` — no: there is no single gold answer to share across a set.
* ``family_relationships`` — no: only the story text and the asked pair are exposed, and its gendered, in-law and
  spouse relations have no counterpart in our gender-free hierarchy vocabulary (``S10_relation_compose``).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from iga.external.reasoning_gym import PREFIX, import_reasoning_gym

_OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
S01 = "S01_arith_chain"

NOT_IMPORTABLE = {
    "gsm_symbolic": "metadata holds one template's variables, not a structure our skeletons take",
    "syllogism": "our domains have no category-noun lexicon for categorical syllogisms",
    "propositional_logic": "no single gold answer to share across an isomer set",
    "family_relationships": "gendered/in-law relations have no counterpart in our hierarchy vocabulary",
}
#: reasoning-gym options for imported arithmetic. No parentheses or negation; no division either: its divisions are
#: rarely exact, which halves the share of usable items (measured: 42% of items are chains with these options,
#: 23% with "/" added).
ARITHMETIC_OPTIONS = {
    "min_terms": 3,
    "max_terms": 4,
    "min_digits": 1,
    "max_digits": 2,
    "operators": ("+", "-", "*"),
    "allow_parentheses": False,
    "allow_negation": False,
}


def chain_params(expression: str) -> dict[str, Any] | None:
    """``S01_arith_chain`` params for a left-to-right chain expression, else ``None``.

    Accepted: integer literals combined left to right (``((a op b) op c)`` as Python parses it), every
    intermediate a positive integer, added/subtracted amounts ≥ 1, factors and divisors ≥ 2, exact divisions.

    >>> chain_params("7 * 3 - 5 + 12")
    {'start': 7, 'ops': [['mul', 3], ['sub', 5], ['add', 12]], 'distractors': []}
    >>> chain_params("7 + 3 * 5") is None   # precedence: 7 + (3 * 5) is not a chain
    True
    """
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        return None
    ops: list[list[Any]] = []
    while isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        if not (isinstance(node.right, ast.Constant) and type(node.right.value) is int):
            return None
        ops.append([_OPS[type(node.op)], node.right.value])
        node = node.left
    if not (isinstance(node, ast.Constant) and type(node.value) is int) or not ops:
        return None
    ops.reverse()
    x = node.value
    if x < 1:
        return None
    for op, b in ops:
        if (op in ("add", "sub") and b < 1) or (op in ("mul", "div") and b < 2) or (op == "div" and x % b):
            return None
        x = {"add": x + b, "sub": x - b, "mul": x * b, "div": x // b}[op]
        if x < 1:
            return None
    return {"start": node.value, "ops": ops, "distractors": []}


def _instance(params: dict[str, Any]) -> Any:
    """The S01 logical instance of ``params``, cross-checked by the skeleton's independent checker."""
    from iga.isomers.skeletons import get_skeleton

    values = [params["start"], *(b for _, b in params["ops"])]
    difficulty = {
        "regime": "imported",
        "depth": len(params["ops"]),
        "width": 0,
        "distractors": 0,
        "num_range": [min(values), max(values)],
        "premise_order": "forward",
        "negation_rate": 0.0,
    }
    return get_skeleton(S01).instance_from(params, difficulty)


def import_basic_arithmetic(
    n: int,
    seed: int = 0,
    *,
    split: str = "id_test",
    domains: Sequence[str] | None = None,
    max_draws: int | None = None,
) -> list[dict]:
    """``n`` isomer sets (one record per domain) from reasoning-gym ``basic_arithmetic`` items.

    Items are drawn from ``create_dataset("basic_arithmetic", seed=seed, **ARITHMETIC_OPTIONS)`` in order and
    kept when :func:`chain_params` accepts them (about 2 in 5), until ``n`` sets are built. ``domains`` defaults
    to our training and held-out domains. Each record carries ``source`` (dataset, seed, item index, expression).

    >>> recs = import_basic_arithmetic(1, seed=0, domains=["math", "medicine"])
    >>> [r["domain"] for r in recs], recs[0]["answer"] == recs[1]["answer"]
    (['math', 'medicine'], True)
    """
    from iga.isomers.domains import load_domains
    from iga.isomers.record import GENERATOR_VERSION, SPLITS
    from iga.isomers.render import render
    from iga.isomers.rng import HashRng

    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    loaded = load_domains()
    names = (
        list(domains)
        if domains is not None
        else [d for d, dom in loaded.items() if dom.role in ("train", "heldout")]
    )
    unknown = [d for d in names if d not in loaded]
    if unknown or len(set(names)) < 2:
        raise ValueError(
            f"domains: need at least 2 distinct known domains (known: {', '.join(loaded)}), got {names}"
        )
    rg = import_reasoning_gym()
    draws = max_draws or 20 * n
    dataset = rg.create_dataset("basic_arithmetic", size=draws, seed=seed, **ARITHMETIC_OPTIONS)
    records: list[dict] = []
    kept = 0
    for index in range(draws):
        if kept == n:
            break
        expression = dataset[index]["metadata"]["expression"]
        params = chain_params(expression)
        if params is None:
            continue
        inst = _instance(params)
        instance_id = f"rg-basic_arithmetic-s{seed}-{index:05d}"
        for name in names:
            text = render(inst, loaded[name], HashRng(seed, PREFIX, instance_id).child("render", name))
            records.append(
                {
                    "id": f"{instance_id}-{name}",
                    "instance_id": instance_id,
                    "skeleton": inst.skeleton,
                    "family": inst.family,
                    "domain": name,
                    "split": split,
                    "params": params,
                    "difficulty": dict(inst.difficulty),
                    "question": text.question,
                    "gold_cot": text.gold_cot,
                    "answer": text.answer,
                    "answer_type": inst.answer_type,
                    "canonical_answer": inst.answer,
                    "canonical_trace": inst.canonical_trace,
                    "anchors": text.anchors,
                    "label_space": text.label_space,
                    "shortcut": None,
                    "seed": seed,
                    "generator_version": GENERATOR_VERSION,
                    "source": {
                        "dataset": f"{PREFIX}:basic_arithmetic",
                        "seed": seed,
                        "index": index,
                        "expression": expression,
                    },
                }
            )
        kept += 1
    if kept < n:
        raise ValueError(
            f"n: only {kept} of {draws} basic_arithmetic items are left-to-right chains; "
            f"ask for fewer sets or pass a larger max_draws"
        )
    return records


#: Tasks with an importer: name -> function(n, seed, *, split, domains) -> records.
IMPORTABLE = {"basic_arithmetic": import_basic_arithmetic}


def import_isomer_sets(spec: str, n: int, seed: int = 0, **kwargs: Any) -> list[dict]:
    """Isomer-set records for ``reasoning_gym:TASK``; a task without an importer is refused with the reason."""
    prefix, _, name = spec.partition(":")
    if prefix != PREFIX or name not in IMPORTABLE:
        reason = f" ({NOT_IMPORTABLE[name]})" if prefix == PREFIX and name in NOT_IMPORTABLE else ""
        allowed = ", ".join(f"{PREFIX}:{t}" for t in IMPORTABLE)
        raise ValueError(f"format: {spec!r} cannot be imported as isomer sets{reason}; importable: {allowed}")
    return IMPORTABLE[name](n, seed, **kwargs)
