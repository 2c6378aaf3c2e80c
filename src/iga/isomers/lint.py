"""Vocabulary leakage lint: held-out domains must not share content words with training domains.

If a held-out word (say "dollars") also appeared in a training template, a student could succeed on the
held-out surface by memorised vocabulary instead of transferred logic, and OOD accuracy would be inflated.

A **content word** here is a maximal run of ASCII letters, lower-cased, at least 4 letters long, that is not
in :data:`SHARED_WORDS`. The text linted is everything a domain can put into a record: lexicon and word-pool
entries, question / premise / step templates and the shortcut cue (slot names such as ``{name}`` are removed
first; the free-text ``description`` is not rendered and is not linted). :data:`SHARED_WORDS` holds English
function words and the domain-neutral vocabulary of quantities, logic and relations ("total", "every",
"holds", "grand", "side", ...) that the templates of every domain are meant to share - the logic, not the
surface. Names count too: a training name reused in a held-out domain is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from iga.isomers.domains import Domain

_SLOT = re.compile(r"\{[a-z0-9_]*\}")
_WORD = re.compile(r"[A-Za-z]+")
MIN_LENGTH = 4

#: Words every domain may use: function words, and the shared vocabulary of counting, logic and relations.
_SHARED = """
about above after again against all also always among amount another answer anything around because
been before being below between both but cannot come comes conclude could count counts decide decides does
done down each either else equal equals every everyone except extra final first following from further given
goes have having here hold holds into itself just least left less like more most much must need needs never
next none normally nothing number numbers once only other others over overlaps overrides pairwise part parts
rest same says settle settles should show shows since some specific still such than that their them then
there these they this those through times together total under until upon what when whenever where which
while whom whose will with within without would your yours true false unknown general rule rules default
whole single start starts begins half probability chance likely random randomly grand great side cross upper
lower direct directly relation related relate tree adds divided multiplied split share shared equally
exactly larger largest smallest many were give gives second group size value worth rate last means allowed
listed lacks stays keeps makes takes carries carry found removes prepares moved moves move transfer
transfers test tests get gets
"""
SHARED_WORDS = frozenset(_SHARED.split())


def content_words(domain: Domain) -> set[str]:
    """The content words of everything ``domain`` can render."""
    return {w for text in _texts(domain) for w in _words(text)}


def leaks(domains: Mapping[str, Domain]) -> dict[str, dict[str, list[str]]]:
    """``{heldout_domain: {word: [training domains that use it]}}``; empty when the lint passes."""
    train = {name: content_words(d) for name, d in domains.items() if d.role == "train"}
    out: dict[str, dict[str, list[str]]] = {}
    for name, d in domains.items():
        if d.role != "heldout":
            continue
        shared = {w: sorted(t for t, words in train.items() if w in words) for w in content_words(d)}
        shared = {w: ts for w, ts in sorted(shared.items()) if ts}
        if shared:
            out[name] = shared
    return out


def _words(text: str) -> Iterable[str]:
    for token in _WORD.findall(_SLOT.sub(" ", text)):
        word = token.lower()
        if len(word) >= MIN_LENGTH and word not in SHARED_WORDS:
            yield word


def _texts(domain: Domain) -> Iterable[str]:
    if domain.shortcut_cue:
        yield domain.shortcut_cue
    pools = list(domain.lexicon.values())
    from iga.isomers.skeletons import get_skeleton

    for sk_id, section in domain.sections.items():
        for group in (section.questions, section.premises):
            for templates in group.values():
                yield from templates
        # a skeleton's default steps are the same in every domain (symbols and copied words): not a domain's text
        defaults = get_skeleton(sk_id).spec.default_steps
        yield from (t for op, t in section.steps.items() if defaults.get(op) != t)
        pools.extend(section.words.values())
    for pool in pools:
        yield from (pool.values() if isinstance(pool, Mapping) else pool)
