"""The micro base's training rows: skill problems, narrative text and drills, a pure function of (config, step).

Split from :mod:`iga.models.micro_base` (which holds the config, the training loop and the cache): what a row of the
base is, apart from how the base is trained on it. Every random choice is drawn from ``HashRng(seed, step, row)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iga.models.micro_base import MicroBaseConfig


def with_pooled_words(domain: Any, domains: list[Any]) -> Any:
    """``domain`` with each word pool of its sections replaced by the union of that pool over ``domains``."""
    from dataclasses import replace

    sections = {}
    for sk_id, section in domain.sections.items():
        words = dict(section.words)
        for name, pool in section.words.items():
            if isinstance(pool, tuple):
                words[name] = tuple(
                    sorted({w for d in domains if d.covers(sk_id) for w in d.pool(sk_id, name)})
                )
        sections[sk_id] = replace(section, words=words)
    return replace(domain, sections=sections)


class MicroRows:
    """The base's training rows, a pure function of ``(config, step)``: ``(input_ids, labels)`` per row."""

    def __init__(self, cfg: MicroBaseConfig, tokenizer: Any, domains: Mapping[str, Any]) -> None:
        from iga.isomers.presets import make_config
        from iga.isomers.skeletons import get_skeleton, list_skeletons

        if cfg.skill_domain not in domains:
            raise ValueError(
                f"skill_domain: {cfg.skill_domain!r} is not a loaded domain ({', '.join(domains)})"
            )
        self.cfg, self.tok, self.domains = cfg, tokenizer, domains
        suite = make_config("micro")
        self.skeletons = [get_skeleton(s) for s in list_skeletons("micro")]
        self.knobs = {sk.id: suite.knobs(sk.id, "train") for sk in self.skeletons}
        self.narrative_domains = [
            d for d in domains.values() if all(d.covers(sk.id) for sk in self.skeletons)
        ]
        pooled = with_pooled_words(domains[cfg.skill_domain], self.narrative_domains)
        self.skill_domain = pooled if cfg.skill_words == "all_domains" else domains[cfg.skill_domain]
        late_words = cfg.late_skill_words or cfg.skill_words
        self.late_skill_domain = pooled if late_words == "all_domains" else domains[cfg.skill_domain]
        self.drill_words = sorted(
            {
                w
                for section in pooled.sections.values()
                for pool in section.words.values()
                if isinstance(pool, tuple)
                for w in pool
            }
        )

    def drill_row(self, rng: Any) -> tuple[list[int], list[int]]:
        """A copy drill: ``w1 … wn . w1 … wn`` (or, for ``drill_reverse_share`` of them, ``… . wn … w1``) + EOS,
        the loss on the repeat."""
        words = rng.sample(self.drill_words, rng.randint(6, 12))
        tok = self.tok
        first = tok(" ".join(words) + " .", add_special_tokens=False)["input_ids"]
        body = first[:-1]
        if self.cfg.drill_reverse_share and rng.child("reverse").random() < self.cfg.drill_reverse_share:
            body = body[::-1]  # token by token: a word of two tokens comes out reversed too
        repeat = [*body, tok.eos_token_id]
        return first + repeat, [-100] * len(first) + repeat

    def fact_row(self, rng: Any) -> tuple[list[int], list[int]]:
        """An arithmetic drill: 6-10 facts ``a ± b = c .`` of M01's table + EOS, the loss on each ``c`` and EOS.
        ``a`` is uniform over ``0..CAP`` (not over the values M01's walks pass through), ``b`` over M01's training
        ``num_range``, the result stays in ``0..CAP``."""
        from iga.isomers.skeletons.m01_arith_walk import CAP

        lo, hi = self.knobs["M01_arith_walk"].num_range
        tok = self.tok
        ids: list[int] = []
        labels: list[int] = []
        for _ in range(rng.randint(6, 10)):
            a = rng.randint(0, CAP)
            op = rng.choice([o for o, ok in (("+", a + lo <= CAP), ("-", a - lo >= 0)) if ok])
            b = rng.randint(lo, min(hi, CAP - a) if op == "+" else min(hi, a))
            c = a + b if op == "+" else a - b
            head = tok(f"{a} {op} {b} =", add_special_tokens=False)["input_ids"]
            tail = tok(f"{c} .", add_special_tokens=False)["input_ids"]
            ids += head + tail
            labels += [-100] * len(head) + tail
        return [*ids, tok.eos_token_id], [*labels, tok.eos_token_id]

    def row(self, step: int, i: int) -> tuple[list[int], list[int]]:
        from iga.isomers.render import render, render_narrative
        from iga.isomers.rng import HashRng
        from iga.models.prompting import PromptFormat

        rng = HashRng(self.cfg.seed, "micro-base", step, i)
        late = step >= self.cfg.late_start * self.cfg.steps
        drill = self.cfg.drill_share
        if late and self.cfg.late_drill_share is not None:
            drill = self.cfg.late_drill_share
        if drill and rng.child("drill").random() < drill:
            return self.drill_row(rng.child("drill-row"))
        fact = self.cfg.fact_drill_share
        if late and self.cfg.late_fact_drill_share is not None:
            fact = self.cfg.late_fact_drill_share
        if step >= self.cfg.steps:  # the polish phase (its steps follow the base's)
            fact = self.cfg.polish_fact_drill_share
        any_row = self.cfg.fact_drill_rows == "any" or step >= self.cfg.steps
        if fact and any_row and rng.child("fact").random() < fact:
            return self.fact_row(rng.child("fact-row"))
        late = late and self.cfg.late_weights is not None
        weights = self.cfg.late_weights if late else self.cfg.skeleton_weights
        u = rng.child("skeleton").random() * sum(weights)
        sk = self.skeletons[next((k for k in range(3) if u < sum(weights[: k + 1])), 3)]
        params, difficulty = sk.sample(rng.child("sample"), self.knobs[sk.id])
        tok = self.tok
        if rng.child("kind").random() < self.cfg.skill_share:
            m01_drill = fact and not any_row and sk.id == "M01_arith_walk"
            if m01_drill and rng.child("fact").random() < fact:
                return self.fact_row(rng.child("fact-row"))
            inst = sk.instance_from(params, {"regime": "train", **difficulty})
            text = render(inst, self.late_skill_domain if late else self.skill_domain, rng.child("render"))
            prompt = tok(PromptFormat().prompt({"question": text.question}), add_special_tokens=False)[
                "input_ids"
            ]
            cot = tok(text.gold_cot, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            return prompt + cot, [-100] * len(prompt) + cot
        domain = self.narrative_domains[rng.child("domain").randint(0, len(self.narrative_domains) - 1)]
        ids = tok(render_narrative(sk, params, domain, rng.child("render")), add_special_tokens=False)[
            "input_ids"
        ]
        ids = [*ids, tok.eos_token_id]
        return ids, list(ids)

    def batch(self, step: int) -> dict[str, Any]:
        from iga.utils.padding import right_pad

        return right_pad([self.row(step, i) for i in range(self.cfg.batch_size)], self.tok.pad_token_id)
