"""Typed answer parsing, extraction, comparison and scoring (iga.isomers.answers)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.isomers.answers import (
    FRACTION_TOLERANCE,
    ExtractedAnswer,
    answers_match,
    extract_answer,
    format_answer,
    normalize_label,
    parse_answer,
    score_completion,
)
from iga.isomers.record import ANSWER_TYPES

KIN = ["parent", "child", "sibling", "grandparent", "uncle/aunt", "niece/nephew", "cousin"]


@pytest.mark.parametrize(
    ("text", "answer_type", "expected"),
    [
        # the formats of benchmarks.md §4.8 and §4.5
        ("1,000", "int", 1000),
        ("1,234,567", "int", 1234567),
        ("$12.", "int", 12),
        ("-$12", "int", -12),
        ("$-12", "int", -12),
        ("3/6", "fraction", Fraction(1, 2)),
        ("Yes.", "bool", True),
        ("cannot be determined", "tri", "unknown"),
        (r"\boxed{\frac{3}{4}}", "fraction", Fraction(3, 4)),
        ("**42**", "int", 42),
        ("-7", "int", -7),
        ("−7", "int", -7),  # U+2212 minus sign
        ("-0", "int", 0),
        ("+5", "int", 5),
        # numbers
        ("12.0", "int", 12),
        ("24/2", "int", 12),
        ("25%", "int", 25),  # % is a unit: the number as written, not 1/4
        ("42 mg per day", "int", 42),
        ("a total of 42 tablets", "int", 42),
        ("12mg", "int", 12),
        ("x = -3", "int", -3),
        ("6 × 7 = 42", "int", 42),
        ("1\\,000", "int", 1000),
        ("1 1/2", "fraction", Fraction(3, 2)),
        ("-1 1/2", "fraction", Fraction(-3, 2)),
        ("1½ cups", "fraction", Fraction(3, 2)),
        (r"2\frac{1}{2}", "fraction", Fraction(5, 2)),
        (r"-\dfrac{3}{6}", "fraction", Fraction(-1, 2)),
        (r"\tfrac12", "fraction", Fraction(1, 2)),
        ("0.25", "fraction", Fraction(1, 4)),
        (".5", "fraction", Fraction(1, 2)),
        ("7", "fraction", Fraction(7)),
        ('"0.1"', "fraction", Fraction(1, 10)),
        (r"$\text{7/8}$", "fraction", Fraction(7, 8)),
        # bool / tri
        ("no", "bool", False),
        ("TRUE", "bool", True),
        ("No, the patient does not qualify", "bool", False),
        (r"$\text{yes}$", "bool", True),
        ("It cannot be determined", "tri", "unknown"),
        ("can't be determined", "tri", "unknown"),
        ("Not enough information.", "tri", "unknown"),
        ("uncertain", "tri", "unknown"),
        ("neither true nor false", "tri", "unknown"),
        ("yes", "tri", "true"),
        ("**False**", "tri", "false"),
        ("The statement is true", "tri", "true"),
    ],
)
def test_parse_tricky_formats(text: str, answer_type: str, expected: object) -> None:
    value = parse_answer(text, answer_type)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "answer_type"),
    [
        ("12.5", "int"),  # not an integer
        ("3 or 4", "int"),  # two numbers
        ("1,2", "int"),  # not a thousands grouping
        ("1,0000", "int"),
        ("- 5", "int"),  # detached sign
        ("x1", "int"),
        ("forty-two", "int"),  # number words are not read
        ("3 5/4", "fraction"),  # improper "mixed number"
        ("2 2/2", "fraction"),
        ("1/0", "fraction"),
        ("", "int"),
        ("maybe", "bool"),
        ("unknown", "bool"),
        ("not true", "tri"),  # a negation outside the matched phrase
        ("it is unknown whether it is true", "tri"),  # two different values mentioned
        ("uncle or aunt", "label"),
        ("not the cousin", "label"),
        ("cousin or sibling", "label"),
    ],
)
def test_parse_rejects(text: str, answer_type: str) -> None:
    assert parse_answer(text, answer_type, label_space=KIN) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sibling", "sibling"),
        ("the siblings.", "sibling"),
        ("Uncle/Aunt", "uncle/aunt"),
        ("uncle aunt", "uncle/aunt"),
        ("Rex is Sam's cousin", "cousin"),
        ("grandparents", "grandparent"),
        ("**a child**", "child"),
    ],
)
def test_parse_label_normalisation(text: str, expected: str) -> None:
    assert parse_answer(text, "label", label_space=KIN) == expected


def test_label_synonyms_and_ambiguity() -> None:
    assert parse_answer("Mother", "label", label_space=KIN, synonyms={"mother": "parent"}) == "parent"
    assert parse_answer("mother", "label", label_space=KIN) is None
    # Two members that normalise alike: only their exact spellings still parse.
    space = ["Manager", "managers"]
    assert parse_answer("managers", "label", label_space=space) == "managers"
    assert parse_answer("Manager", "label", label_space=space) == "Manager"
    assert parse_answer("the manager", "label", label_space=space) is None
    with pytest.raises(ValueError, match="not in label_space"):
        parse_answer("mum", "label", label_space=KIN, synonyms={"mum": "mother"})


def test_entity_names() -> None:
    names = ["Alex", "Sam", "Polly"]
    assert parse_answer("alex", "entity", label_space=names) == "Alex"
    assert parse_answer("Polly.", "entity", label_space=names) == "Polly"
    assert parse_answer("Alex is taller than Sam", "entity", label_space=names) is None
    with pytest.raises(ValueError, match="needs a non-empty label_space"):
        parse_answer("Alex", "entity")
    with pytest.raises(ValueError, match="needs a non-empty label_space"):
        extract_answer("no marker here", "entity", label_space=[])


def test_unknown_type_and_mode_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="unknown answer_type 'float'; allowed: int, fraction, bool"):
        parse_answer("1", "float")
    with pytest.raises(ValueError, match="unknown mode 'lenient'; allowed: strict, flexible"):
        extract_answer("The answer is 1.", "int", mode="lenient")
    with pytest.raises(ValueError, match="unknown mode"):
        answers_match("1", "1", "int", mode="exact")


# --- extraction ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "answer_type", "expected"),
    [
        ("Step 1: 6 × 7 = 42.\nThe answer is **42**.", "int", ExtractedAnswer("**42**", 42, "the_answer_is")),
        ("The answer is 41. Wait, no.\nThe answer is 42.", "int", ExtractedAnswer("42", 42, "the_answer_is")),
        ("Total: 1,000 mg\n#### 1,000", "int", ExtractedAnswer("1,000", 1000, "hash")),
        (r"so $\boxed{\frac{3}{4}}$", "fraction", ExtractedAnswer(r"\frac{3}{4}", Fraction(3, 4), "boxed")),
        (
            r"\boxed{1} then \boxed{{\frac{1}{2}}}",
            "fraction",
            ExtractedAnswer(r"{\frac{1}{2}}", Fraction(1, 2), "boxed"),
        ),
        (
            "the final answer is: 3.5 mg.",
            "fraction",
            ExtractedAnswer("3.5 mg", Fraction(7, 2), "the_answer_is"),
        ),
        ("THE ANSWER IS -0.", "int", ExtractedAnswer("-0", 0, "the_answer_is")),
        ("The answer is Yes. The patient qualifies.", "bool", ExtractedAnswer("Yes", True, "the_answer_is")),
        (
            "So the answer is: it cannot be determined.",
            "tri",
            ExtractedAnswer("it cannot be determined", "unknown", "the_answer_is"),
        ),
        ("The answer is $12.", "int", ExtractedAnswer("$12", 12, "the_answer_is")),
        # the first marker that parses wins, in the order answer-is → #### → boxed
        ("#### 7\nThe answer is 8.", "int", ExtractedAnswer("8", 8, "the_answer_is")),
        (r"\boxed{7}\n#### 9", "int", ExtractedAnswer("9", 9, "hash")),
        ("The answer is around forty.\n#### 40", "int", ExtractedAnswer("40", 40, "hash")),
        # nothing parses: the first span found comes back without a value
        ("The answer is forty.", "int", ExtractedAnswer("forty", None, "the_answer_is")),
        ("no marker at all", "int", ExtractedAnswer(None, None, None)),
    ],
)
def test_extract_strict(completion: str, answer_type: str, expected: ExtractedAnswer) -> None:
    assert extract_answer(completion, answer_type) == expected


def test_number_in_cot_without_final_line_strict_fails_flexible_finds_it() -> None:
    cot = "Step 1: 3 + 4 = 7.\nStep 2: 7 × 6 = 42 tablets."
    assert extract_answer(cot, "int") == ExtractedAnswer(None, None, None)
    assert extract_answer(cot, "int", mode="flexible") == ExtractedAnswer("42", 42, "fallback_number")
    assert score_completion(cot, {"answer": "42", "answer_type": "int"}).failed_extraction
    assert score_completion(cot, {"answer": "42", "answer_type": "int"}, mode="flexible").correct


@pytest.mark.parametrize(
    ("completion", "answer_type", "expected_text", "expected"),
    [
        ("half is 1/2 and then 3/4 cups", "fraction", "3/4", Fraction(3, 4)),
        (r"it is \frac{5}{8}", "fraction", "5/8", Fraction(5, 8)),
        ("Is it true? Yes, since the rule applies", "bool", "yes", True),
        ("X is true, so Y... cannot be determined", "tri", "cannot be determined", "unknown"),
        ("Rex is Sam's father, so Sam's cousin.", "label", "cousin", "cousin"),
    ],
)
def test_extract_flexible_fallback(
    completion: str, answer_type: str, expected_text: str, expected: object
) -> None:
    assert extract_answer(completion, answer_type, label_space=KIN).value is None
    got = extract_answer(completion, answer_type, mode="flexible", label_space=KIN)
    assert (got.text, got.value) == (expected_text, expected)
    assert got.method == ("fallback_number" if answer_type == "fraction" else "fallback_label")


def test_flexible_fallback_skips_what_is_not_a_number() -> None:
    # dates and version strings are not numbers, and a glued digit ("x1") is part of a word
    for completion in ("filed on 3/4/2025", "version 1.2.3", "see item x1"):
        assert extract_answer(completion, "fraction", mode="flexible") == ExtractedAnswer(None, None, None)


def test_flexible_prefers_a_marker_and_falls_back_when_it_does_not_parse() -> None:
    assert extract_answer("3 then 4. The answer is 5.", "int", mode="flexible").method == "the_answer_is"
    got = extract_answer("Step 1: 12 tablets. The answer is twelve.", "int", mode="flexible")
    assert got == ExtractedAnswer("12", 12, "fallback_number")
    # a last number of the wrong type is no fallback: the unparsed span is reported instead
    assert extract_answer("The answer is lots. 2.5", "int", mode="flexible") == ExtractedAnswer(
        "lots", None, "the_answer_is"
    )


# --- comparison and scoring ---------------------------------------------------------------------------------------


def test_answers_match() -> None:
    assert answers_match("3/6", "1/2", "fraction")
    assert answers_match("0.5", "1/2", "fraction")
    assert answers_match(0.1, "1/10", "fraction")  # a float counts by its shortest repr
    assert answers_match(Fraction(2, 4), "1/2", "fraction")
    assert answers_match(12, "12", "int")
    assert not answers_match("12.5", "12", "int")
    assert not answers_match("0.3333", "1/3", "fraction")
    assert answers_match("0.3333", "1/3", "fraction", mode="flexible")
    assert not answers_match("0.33", "1/3", "fraction", mode="flexible")
    assert answers_match("Yes.", True, "bool")
    assert answers_match("no", "false", "tri")
    assert answers_match("the Cousins", "cousin", "label", label_space=KIN)
    assert not answers_match("sibling", "cousin", "label", label_space=KIN)
    assert not answers_match("gibberish", "42", "int")
    with pytest.raises(ValueError, match="gold answer 'forty' does not parse as 'int'"):
        answers_match("40", "forty", "int")
    with pytest.raises(TypeError, match="pass a string"):
        answers_match(True, "1", "int")


def test_flexible_tolerance_is_exact_at_the_boundary() -> None:
    assert Fraction(1, 2000) == FRACTION_TOLERANCE
    assert answers_match("0.3338", "1/3", "fraction", mode="flexible")  # off by 4.67e-4
    assert not answers_match("0.3339", "1/3", "fraction", mode="flexible")  # off by 5.67e-4
    gold = Fraction(1, 3)
    edge = gold + FRACTION_TOLERANCE
    assert answers_match(edge, gold, "fraction", mode="flexible")
    assert not answers_match(edge + Fraction(1, 10**12), gold, "fraction", mode="flexible")
    assert answers_match(gold - FRACTION_TOLERANCE, gold, "fraction", mode="flexible")
    assert not answers_match(edge, gold, "fraction")


def test_score_completion() -> None:
    record = {"answer": "uncle/aunt", "answer_type": "label", "label_space": KIN}
    ok = score_completion("Step 1: ...\nThe answer is Uncle/Aunt.", record)
    assert (ok.correct, ok.failed_extraction, ok.extracted.value) == (True, False, "uncle/aunt")
    wrong = score_completion("The answer is cousin.", record)
    assert (wrong.correct, wrong.failed_extraction) == (False, False)
    failed = score_completion("I do not know.", record)
    assert (failed.correct, failed.failed_extraction, failed.extracted.method) == (False, True, None)
    with pytest.raises(ValueError, match="record lacks field 'answer_type'"):
        score_completion("The answer is 1.", {"answer": "1"})


def test_format_answer() -> None:
    assert format_answer(Fraction(6, 4), "fraction") == "3/2"
    assert format_answer(Fraction(-4, 2), "fraction") == "-2"
    assert format_answer(5, "fraction") == "5"
    assert format_answer(-12, "int") == "-12"
    assert format_answer(True, "bool") == "yes"
    assert format_answer("unknown", "tri") == "unknown"
    assert format_answer("Uncle/Aunt", "label") == "Uncle/Aunt"
    for bad, answer_type in [
        (True, "int"),
        (Fraction(1, 2), "int"),
        ("maybe", "tri"),
        (1, "bool"),
        (3, "label"),
    ]:
        with pytest.raises(ValueError):
            format_answer(bad, answer_type)


def test_normalize_label() -> None:
    assert normalize_label("The Uncle/Aunts.") == "uncle aunt"
    assert normalize_label("boss") == normalize_label("Boss") == "boss"


# --- properties -----------------------------------------------------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_LABEL = st.lists(_WORD, min_size=1, max_size=3).flatmap(
    lambda ws: st.sampled_from([" ", "-", "/"]).map(lambda sep: sep.join(ws))
)


@st.composite
def _label_case(draw: st.DrawFn) -> tuple[list[str], str]:
    space = draw(st.lists(_LABEL, min_size=1, max_size=6, unique_by=normalize_label))
    space = [label for label in space if normalize_label(label)]  # "the" alone normalises to nothing
    if not space:
        space = ["fallback"]
    return space, draw(st.sampled_from(space))


@st.composite
def _typed_value(draw: st.DrawFn) -> tuple[str, object, list[str] | None]:
    answer_type = draw(st.sampled_from(ANSWER_TYPES))
    if answer_type == "int":
        return answer_type, draw(st.integers(-(10**12), 10**12)), None
    if answer_type == "fraction":
        return answer_type, draw(st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**9)), None
    if answer_type == "bool":
        return answer_type, draw(st.booleans()), None
    if answer_type == "tri":
        return answer_type, draw(st.sampled_from(["true", "false", "unknown"])), None
    space, value = draw(_label_case())
    return answer_type, value, space


@given(_typed_value())
def test_format_then_parse_round_trips(case: tuple[str, object, list[str] | None]) -> None:
    answer_type, value, space = case
    assert parse_answer(format_answer(value, answer_type), answer_type, label_space=space) == value


@given(st.integers(-(10**15), 10**15))
def test_thousands_separators_and_decorations(n: int) -> None:
    for text in (f"{n:,}", f"**{n}**.", f'"{n}"', f"$\\text{{{n}}}$", f"{n} units"):
        assert parse_answer(text, "int") == n


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**6), max_value=10**6))
def test_decimals_parse_exactly(d: object) -> None:
    text = f"{d:f}"
    assert parse_answer(text, "fraction") == Fraction(text)


# Surrounding text that holds no answer marker of its own.
_NOISE = st.text(alphabet="abcdefgh ijklmnop qrstuvwxyz0123456789.,:;!?()-+=\n", max_size=80).filter(
    lambda s: not re.search(r"answer\s+is", s, re.IGNORECASE)
)
_CONVENTIONS = (
    "The answer is {a}.",
    "Therefore, the final answer is: **{a}**.",
    "#### {a}",
    "\\boxed{{{a}}}",
    "The answer is $\\boxed{{{a}}}$.",
)


@given(_typed_value(), _NOISE, _NOISE, st.sampled_from(_CONVENTIONS))
def test_embedded_answer_is_extracted(
    case: tuple[str, object, list[str] | None], before: str, after: str, convention: str
) -> None:
    answer_type, value, space = case
    completion = f"{before}\n{convention.format(a=format_answer(value, answer_type))}\n{after}"
    for mode in ("strict", "flexible"):
        got = extract_answer(completion, answer_type, mode=mode, label_space=space)
        assert got.value == value
        assert got.method in ("the_answer_is", "hash", "boxed")


@given(st.one_of(st.integers(-(10**9), 10**9), st.fractions(max_denominator=1000)), _NOISE)
def test_flexible_finds_the_last_number(value: Fraction | int, before: str) -> None:
    completion = f"{before}\nso we get {format_answer(value, 'fraction')} in the end"
    assert extract_answer(completion, "fraction").value is None
    got = extract_answer(completion, "fraction", mode="flexible")
    assert (got.value, got.method) == (value, "fallback_number")
