"""Surface clean-up and number parsing for :mod:`iga.isomers.answers`.

Numbers are read the way models write them: ``1,000``, ``$12.``, ``-3/4``, ``1 1/2``, ``1½``, ``0.25``,
``\\frac{3}{4}``, ``x = 7``, ``42 mg``. Every value is an exact :class:`fractions.Fraction`; decimals are read
from their digits (``0.1`` is exactly ``1/10``), never through a float.

>>> parse_number("$1,234.50")
Fraction(2469, 2)
>>> parse_number("3 or 4") is None
True
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

_VULGAR = {
    "½": "1/2",
    "⅓": "1/3",
    "⅔": "2/3",
    "¼": "1/4",
    "¾": "3/4",
    "⅛": "1/8",
    "⅜": "3/8",
    "⅝": "5/8",
    "⅞": "7/8",
}
_VULGAR_RE = re.compile(rf"(\d?)([{''.join(_VULGAR)}])")

# Innermost-first: `[^{}]*` only matches brace-free content, so nested wrappers unwrap over repeated passes.
_FRAC_RE = re.compile(r"(?:(\d)\s*)?\\[dt]?frac(?:\{([^{}]*)\}\{([^{}]*)\}|(\d)(\d))")
_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|boxed|fbox)\s*\{([^{}]*)\}")
# LaTeX spacing: inside a number (`1\,000`) it is a thousands separator and vanishes; elsewhere it is a space.
_TEX_INNER_SPACE_RE = re.compile(r"(?<=\d)(?:\\[,!;: ]|~)(?=\d)")
_TEX_SPACE_RE = re.compile(r"\\[,!;: ]|~")
_TEX_DROP_RE = re.compile(r"\\left|\\right|\\[()\[\]]")

_LEAD_JUNK = " \t\r\n*_\"'`“‘([{:$"
_TRAIL_JUNK = " \t\r\n*_\"'`”’)]}.!?,;:$"

NUMBER_RE = re.compile(
    r"""
    (?<![\w.,/])                                  # not the tail of a word or of a longer number
    (?P<sign>[-+])?\$?                            # "-$12"
    (?:
        (?P<whole>\d+)[ \t]+(?P<mn>\d+)/(?P<md>\d+)              # mixed number: 1 1/2
      | (?P<n>\d+)/(?P<d>\d+)                                     # fraction: 3/4
      | (?P<dec>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)       # int or decimal, optional 1,000 grouping
    )
    (?![\d]|[.,/]\d)                              # ...nor its head
    """,
    re.VERBOSE,
)


def clean_latex(text: str) -> str:
    """Rewrite the LaTeX that models put around answers into plain text.

    >>> clean_latex(r"\\boxed{2\\dfrac{1}{2}\\text{ cups}}")
    '2 1/2 cups'
    """
    text = text.replace("\\%", "%").replace("\\$", "$").replace("−", "-")
    text = _TEX_DROP_RE.sub("", text)
    text = _TEX_SPACE_RE.sub(" ", _TEX_INNER_SPACE_RE.sub("", text))
    while True:
        new = _FRAC_RE.sub(_frac_to_text, text)
        new = _WRAPPER_RE.sub(r"\1", new)
        if new == text:
            break
        text = new
    return _VULGAR_RE.sub(lambda m: (m[1] + " " if m[1] else "") + _VULGAR[m[2]], text)


def _frac_to_text(m: re.Match[str]) -> str:
    num, den = (m[2], m[3]) if m[2] is not None else (m[4], m[5])
    # `2\frac{1}{2}` is a mixed number; keep the whole part apart so the number parser sees "2 1/2".
    return f"{m[1]} {num.strip()}/{den.strip()}" if m[1] else f"{num.strip()}/{den.strip()}"


def strip_decorations(text: str) -> str:
    """Remove LaTeX, markdown emphasis, quotes, brackets and sentence punctuation around an answer span.

    >>> strip_decorations('**"Yes."**')
    'Yes'
    """
    text = unicodedata.normalize("NFKC", clean_latex(text))
    while (stripped := text.lstrip(_LEAD_JUNK).rstrip(_TRAIL_JUNK)) != text:
        text = stripped
    return text


def match_value(m: re.Match[str]) -> Fraction | None:
    """The exact value of a :data:`NUMBER_RE` match (None for a zero denominator or an improper mixed number)."""
    sign = -1 if m["sign"] == "-" else 1
    if m["whole"] is not None:
        num, den = int(m["mn"]), int(m["md"])
        # "3 5/4" is not a way anyone writes 4 1/4: read it as two numbers, i.e. ambiguous.
        if den == 0 or num >= den:
            return None
        return sign * (int(m["whole"]) + Fraction(num, den))
    if m["n"] is not None:
        den = int(m["d"])
        return None if den == 0 else sign * Fraction(int(m["n"]), den)
    return sign * Fraction(m["dec"].replace(",", ""))


def parse_number(span: str) -> Fraction | None:
    """Value of a span that states exactly one number, e.g. ``"x = 42 mg"``; None if it holds zero or several.

    Words around the number (units, ``%``, "a total of") are allowed as long as they hold no digit. After an
    ``=`` only the right-hand side counts, so ``"6 × 7 = 42"`` is 42.
    """
    span = strip_decorations(span)
    if "=" in span:
        span = span.rsplit("=", 1)[1]
    found = list(NUMBER_RE.finditer(span))
    if len(found) != 1:
        return None
    m = found[0]
    before, after = span[: m.start()], span[m.end() :]
    # A digit elsewhere means a second quantity; a detached sign ("- 5") is too unclear to guess.
    if any(ch.isdigit() for ch in before + after) or before.rstrip().endswith(("-", "+")):
        return None
    return match_value(m)


def last_number(text: str) -> tuple[str, Fraction | None] | None:
    """The last number written in ``text`` as ``(its text, its value)``, or None if there is none."""
    found = list(NUMBER_RE.finditer(clean_latex(text)))
    if not found:
        return None
    return found[-1].group(0), match_value(found[-1])
