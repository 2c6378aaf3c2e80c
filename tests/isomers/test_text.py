"""The template language: slots, malformed braces, filling and sentence helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iga.isomers.text import TemplateError, a_an, as_sentence, fill, join_words, template_slots

_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_plain = st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=12)


@given(st.lists(st.tuples(_plain, _names), max_size=5), _plain)
def test_slots_round_trip_and_fill_removes_every_brace(parts, tail):
    template = "".join(f"{text}{{{name}}}" for text, name in parts) + tail
    assert template_slots(template) == tuple(name for _, name in parts)
    filled = fill(template, {name: "w" for _, name in parts})
    assert "{" not in filled and "}" not in filled
    assert filled == "".join(f"{text}w" for text, _ in parts) + tail


@pytest.mark.parametrize("template", ["{0}", "{a.b}", "{Name}", "{ x}", "a } b", "{a", "{{a}}", "{}"])
def test_malformed_templates_are_rejected(template):
    with pytest.raises(TemplateError):
        template_slots(template)


def test_sentence_helpers():
    assert as_sentence("  x is   3 ") == "X is 3."
    assert as_sentence("is x 3.", "?") == "Is x 3?"
    assert as_sentence("done.") == "Done."
    assert a_an("impus") == "an impus" and a_an("Velk compound") == "a Velk compound"
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b"], "or") == "a or b"
    assert join_words(["a", "b", "c"]) == "a, b and c"
