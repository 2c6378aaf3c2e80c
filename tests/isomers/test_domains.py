"""Domain files: the shipped set, a user domain, split files, and one clear error per malformed-file class."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from iga.isomers import DomainError, generate_records, load_domains, make_config
from iga.isomers.domains import SHIPPED_ORDER, merge_domain_files
from iga.isomers.instance import Sentence, Step
from iga.isomers.skeletons import list_skeletons, registry
from iga.isomers.skeletons.base import Knobs, Skeleton, Solution, TemplateSpec, make_regimes, slots

ASTRONOMY = (Path(__file__).parent / "data" / "astronomy.yaml").read_text(encoding="utf-8")


def _load(*texts: str, labels=None):
    labels = labels or [f"file{i}.yaml" for i in range(len(texts))]
    return merge_domain_files(list(zip(labels, texts, strict=True)))


def test_shipped_domains_cover_every_skeleton(domains):
    assert list(domains) == list(SHIPPED_ORDER)
    roles = {name: d.role for name, d in domains.items()}
    assert roles == {
        "math": "train",
        "medicine": "train",
        "law": "train",
        "science": "train",
        "finance": "heldout",
        "sports": "heldout",
        "cooking": "heldout",
        "fictional": "heldout",
        "symbolic": "stress",
        "counterfactual": "stress",
    }
    for d in domains.values():
        assert [sk for sk in list_skeletons() if not d.covers(sk)] == [], d.name
        assert d.shortcut_cue and "{value}" in d.shortcut_cue


def test_user_domain_renders_with_selected_skeletons(tmp_path):
    (tmp_path / "astronomy.yaml").write_text(ASTRONOMY)
    loaded = load_domains(tmp_path)
    assert list(loaded)[-1] == "astronomy" and loaded["astronomy"].files == (
        str(tmp_path / "astronomy.yaml"),
    )
    records = generate_records(make_config("tiny", skeletons=["S01"]), seed=0, domains=loaded)
    mine = [r for r in records["ood_surface"] if r["domain"] == "astronomy"]
    assert len(mine) == 2 and all("tonnes" in r["gold_cot"] for r in mine)
    assert all(r["skeleton"] == "S01_arith_chain" for split in records.values() for r in split)
    # a build that needs a section the user domain lacks names the domain, the file and the skeleton
    with pytest.raises(
        DomainError,
        match=r"astronomy.yaml: skeletons.S02_linear_system: domain 'astronomy' has no "
        r"section for S02_linear_system",
    ):
        generate_records(make_config("tiny", skeletons=["S01", "S02"]), seed=0, domains=loaded)


def test_a_domain_split_across_files_is_merged():
    head, body = ASTRONOMY.split("skeletons:\n")
    merged = _load(head, "name: astronomy\nskeletons:\n" + body, labels=["a.yaml", "b.yaml"])
    assert merged["astronomy"].files == ("a.yaml", "b.yaml")
    assert merged["astronomy"].covers("S01_arith_chain")


class _Echo(Skeleton):
    """A one-step user skeleton, registered only inside the test below."""

    id = "S99_echo"
    family = "IsoArith"
    answer_type = "int"
    title = "echo a number"
    spec = TemplateSpec(questions={"ask": slots()}, premises={"fact": slots("n")}, steps={"echo": slots("n")})
    regimes = make_regimes(Knobs(depth=(1, 1)), Knobs(depth=(1, 1)))
    bounds = Knobs(depth=(1, 1))

    def sample(self, rng, knobs):
        return {"n": rng.randint(1, 999)}, {"depth": 1}

    def solve(self, params):
        n = params["n"]
        return Solution(
            (Sentence("fact", {"n": n}),), Sentence("ask"), (Step("echo", (n,), n, {"n": n}),), str(n)
        )

    def check(self, params):
        return str(params["n"])


def test_a_user_file_adds_a_new_skeleton_to_a_shipped_domain(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_skeleton(_Echo())
    (tmp_path / "math_echo.yaml").write_text(
        textwrap.dedent("""\
        name: math
        skeletons:
          S99_echo:
            questions: ["What is the number?", "Which number was given?", "What number is it?"]
            premises: {fact: "The number is {n}."}
            steps: {echo: "the number is {n}"}
        """)
    )
    loaded = load_domains(tmp_path)
    assert loaded["math"].covers("S99_echo") and not loaded["medicine"].covers("S99_echo")
    assert loaded["math"].files[-1].endswith("math_echo.yaml")
    records = generate_records(
        make_config("tiny", skeletons=["S99_echo"], domains=["math"]), seed=0, domains=loaded
    )
    first = records["train"][0]
    assert f"The number is {first['canonical_answer']}." in first["question"]
    assert (
        first["gold_cot"]
        == f"Step 1: The number is {first['canonical_answer']}.\nThe answer is {first['answer']}."
    )


def _broken(old: str, new: str) -> str:
    assert old in ASTRONOMY
    return ASTRONOMY.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _broken('      mul: "A refinery multiplies the load by {n}."\n', ""),
            r"file0.yaml: skeletons.S01_arith_chain.premises.mul: missing in domain 'astronomy' \(S01_arith_chain needs "
            r"premises: start, add, sub, mul, div, distractor\)",
        ),
        (
            _broken('mul: "{a} × {b} = {out} tonnes"', 'mul: "{a} × {b} = {out} tonnes on {planet}"'),
            r"file0.yaml: skeletons.S01_arith_chain.steps.mul: unknown slot \{planet\} \(this template may use: \{a\}, "
            r"\{b\}, \{item\}, \{out\}\)",
        ),
        (
            _broken("role: heldout", "role: test"),
            r"file0.yaml: role: 'test' is not one of train, heldout, stress",
        ),
        (
            _broken("shortcut_cue:", "shortcut_clue:"),
            r"file0.yaml: shortcut_clue: unknown key \(allowed: name, role",
        ),
        (_broken("    words:", "    wordz:"), r"file0.yaml: skeletons.S01_arith_chain.wordz: unknown key"),
        (
            _broken('      - "In tonnes, how much {item} is aboard at the end?"\n', ""),
            r"skeletons.S01_arith_chain.questions.ask: needs at least 3 paraphrases, found 2",
        ),
        (_broken("at the end?", "at the end."), r"questions.ask.2: a question must end with '\?'"),
        (
            _broken("S01_arith_chain:", "S42_unknown:"),
            r"skeletons.S42_unknown: unknown skeleton \(known: S01_arith_chain",
        ),
        (_broken("S01_arith_chain:", "S01:"), r"skeletons.S01: use the full skeleton id 'S01_arith_chain'"),
        (
            _broken("items: [xenon, hydrazine, helium, argon]", "items: [xenon, helium]"),
            r"words.items \(or lexicon.items\): S01_arith_chain needs a list of at least 4 distinct words, found 2",
        ),
        (
            _broken("items: [xenon, hydrazine, helium, argon]", "items: [xenon, no, helium, argon]"),
            r"words.items.1: expected a non-empty string, got False \(quote words such as yes/no",
        ),
        (
            _broken("items: [xenon, hydrazine, helium, argon]", "items: [xenon, xenon, helium, argon]"),
            r"words.items: 'xenon' appears twice",
        ),
        (
            _broken('"Mission control guesses {value}."', '"Mission control guesses."'),
            r"shortcut_cue: must contain the slot \{value\}",
        ),
        (
            _broken('add: "{a} + {b} = {out} tonnes"', 'add: "{a} + {b} = {out} {tonnes"'),
            r"steps.add: unbalanced",
        ),
        (
            _broken("description: Probes, orbits and fuel, for a user-added surface.\n", ""),
            r"file0.yaml: description: missing for domain 'astronomy'",
        ),
        (
            _broken("name: astronomy", "name: Astronomy"),
            r"file0.yaml: name: required, a lowercase identifier",
        ),
        (_broken("role: heldout", "role: [heldout"), r"file0.yaml:4: invalid YAML"),
    ],
)
def test_each_malformed_file_class_gives_a_clear_error(text, message):
    with pytest.raises(DomainError, match=message):
        _load(text)


def test_a_key_defined_twice_across_split_files_names_both_files():
    duplicate = (
        'name: astronomy\nskeletons:\n  S01_arith_chain:\n    steps:\n      add: "{a} + {b} = {out} t"\n'
    )
    with pytest.raises(
        DomainError, match=re.escape("b.yaml: skeletons.S01_arith_chain.steps.add: already defined in a.yaml")
    ):
        _load(ASTRONOMY, duplicate, labels=["a.yaml", "b.yaml"])


def test_a_shipped_key_cannot_be_redefined_by_a_user_file(tmp_path):
    (tmp_path / "law_extra.yaml").write_text("name: law\nrole: heldout\n")
    with pytest.raises(
        DomainError, match=r"law_extra.yaml: role: already defined in <iga>/isomers/domains/law.yaml"
    ):
        load_domains(tmp_path)


def test_a_file_with_only_a_name_is_named_in_the_error():
    with pytest.raises(DomainError, match=r"^lonely.yaml: role: missing for domain 'lonely'"):
        _load("name: lonely\n", labels=["lonely.yaml"])


def test_missing_domains_dir_is_an_error(tmp_path):
    with pytest.raises(DomainError, match="is not a directory"):
        load_domains(tmp_path / "nope")
