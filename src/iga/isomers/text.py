"""The template language of domain files: ``{slot}`` placeholders and nothing else.

A slot is a lowercase identifier in braces. Any other brace (``{0}``, ``{a.b}``, a lone ``}``) is an error, so a
rendered string can never contain a leftover brace. Slots are filled with plain strings; formatting choices
(articles, lists) are made by the skeleton, not by the template.

>>> template_slots("Every {src} is {a_dst}.")
('src', 'a_dst')
>>> fill("Every {src} is {a_dst}.", {"src": "wumpus", "a_dst": "an impus"})
'Every wumpus is an impus.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_BRACED = re.compile(r"\{([^{}]*)\}")
_IDENT = re.compile(r"[a-z][a-z0-9_]*")


class TemplateError(ValueError):
    """A template is malformed (bad slot name or unbalanced braces)."""


def template_slots(template: str) -> tuple[str, ...]:
    """The slot names of ``template`` in order of appearance; raises :class:`TemplateError` if malformed."""
    names = []
    for match in _BRACED.finditer(template):
        name = match.group(1)
        if not _IDENT.fullmatch(name):
            raise TemplateError(f"bad slot {{{name}}}: a slot is a lowercase identifier such as {{name}}")
        names.append(name)
    rest = _BRACED.sub("", template)
    if "{" in rest or "}" in rest:
        raise TemplateError("unbalanced '{' or '}' (slots look like {name}; literal braces are not allowed)")
    return tuple(names)


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``{slot}`` by ``values[slot]`` (a missing slot raises ``KeyError``)."""
    return _BRACED.sub(lambda m: values[m.group(1)], template)


def a_an(phrase: str) -> str:
    """``phrase`` with an indefinite article chosen by its first letter (invented words have no exceptions).

    >>> a_an("impus"), a_an("wumpus")
    ('an impus', 'a wumpus')
    """
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def join_words(words: Sequence[str], conj: str = "and") -> str:
    """``"x"``, ``"x and y"``, ``"x, y and z"``.

    >>> join_words(["fever", "cough", "rash"], "or")
    'fever, cough or rash'
    """
    if len(words) <= 2:
        return f" {conj} ".join(words)
    return ", ".join(words[:-1]) + f" {conj} " + words[-1]


def as_sentence(text: str, end: str = ".") -> str:
    """Capitalise the first character and make sure the text ends with ``end`` (``.`` or ``?``).

    >>> as_sentence("x is 3"), as_sentence("is x 3?", "?")
    ('X is 3.', 'Is x 3?')
    """
    text = " ".join(text.split())
    if text and not text.endswith(end):
        text = text.rstrip(".?!") + end
    return text[:1].upper() + text[1:]
