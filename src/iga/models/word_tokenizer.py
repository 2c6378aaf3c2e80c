"""A word-level tokenizer for the micro regime: every domain word and every integer of the range is one token.

Why not byte-level BPE (:mod:`iga.models.tokenizer`)? A ~1 M-parameter student trained from scratch must copy
names and numbers from the question into its chain of thought and add small numbers. With one token per word and
per integer, a copy is one look-up and ``7 + 5 = 12`` is one table entry; with BPE both depend on how each word
happened to be split (docs/student-recipes.md measured the cost).

The vocabulary is built from text, not learned: the specials, the integers ``0..max_int``, the punctuation marks
and every word of every domain file (templates with their ``{slots}`` removed, word pools, cue templates — the
held-out and stress domains' too, and any ``--domains-dir`` files), the skeletons' default CoT steps, and the
fixed strings of the prompt and the answer line. Text is NFKC-normalised and lower-cased, then split into runs
of letters/digits and single punctuation marks; sorting makes the vocabulary, and so the token ids, a pure
function of that text (its hash is :func:`vocab_hash`).

A word outside the vocabulary is never split silently: :func:`check_words` raises :class:`UnknownWordError`
naming the word and where it came from; the trainer's collator calls it for every record.

>>> tok = build_word_tokenizer(["Dose rises by {n} mg."], max_int=20)
>>> tok.convert_ids_to_tokens(tok("The dose rises by 12 mg.")["input_ids"])
['the', 'dose', 'rises', 'by', '12', 'mg', '.']
>>> tok.decode(tok("The answer is 12.")["input_ids"])
'the answer is 12.'
>>> check_words(tok, "The dose jumps by 3 mg.", source="train.jsonl:4")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
iga.models.word_tokenizer.UnknownWordError: train.jsonl:4: word 'jumps' is not in the word-level vocabulary...
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from iga.models.tokenizer import SPECIAL_TOKENS
from iga.utils.io import stable_hash

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

#: A word is a run of letters/digits/underscores; every other visible character is a token of its own.
WORD_RE = re.compile(r"\w+|[^\w\s]")
_SLOT_RE = re.compile(r"\{[a-z_][a-z0-9_]*\}")
#: Punctuation and symbols always in the vocabulary (templates may use others; those are added as found).
PUNCTUATION = tuple(".,:;?!()[]{}<>=+-×÷*/%'\"#$&@^_|~→")
DEFAULT_MAX_INT = 99


class UnknownWordError(ValueError):
    """A word that the word-level vocabulary does not hold (the message names it and its source)."""


def words_of(text: str) -> list[str]:
    """The tokens a text splits into (after NFKC and lower-casing), ``{slots}`` removed.

    >>> words_of("The {item} costs 12 $, Sam's.")
    ['the', 'costs', '12', '$', ',', 'sam', "'", 's', '.']
    """
    import unicodedata

    return WORD_RE.findall(_SLOT_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()))


def fixed_texts() -> list[str]:
    """Strings every record uses whatever its domain: the prompt format, step labels, the answer line, answers."""
    from iga.isomers.render import ANSWER_PREFIX
    from iga.models.prompting import PromptFormat

    return [
        PromptFormat().template,
        "Step : " + ANSWER_PREFIX,
        "yes no true false unknown cannot be determined",
    ]


def domain_texts(domains: Mapping[str, Any] | None = None) -> list[str]:
    """Every string of the loaded domain files (templates, pools, cues) and the skeletons' default steps."""
    from iga.isomers.domains import load_domains
    from iga.isomers.skeletons import all_skeletons

    domains = load_domains() if domains is None else domains
    out: list[str] = []

    def pool_words(pool: Any) -> Iterable[str]:
        return pool.values() if isinstance(pool, Mapping) else pool

    for domain in domains.values():
        out.append(domain.shortcut_cue or "")
        for pool in domain.lexicon.values():
            out.extend(pool_words(pool))
        for section in domain.sections.values():
            for part in (section.questions, section.premises, section.narration):
                for templates in part.values():
                    out.extend(templates)
            out.extend(section.steps.values())
            for pool in section.words.values():
                out.extend(pool_words(pool))
    for sk in all_skeletons():
        out.extend(sk.spec.default_steps.values())
    return out


def vocabulary(texts: Iterable[str], *, max_int: int = DEFAULT_MAX_INT) -> list[str]:
    """Specials, then the integers ``0..max_int``, then every other token of ``texts``, sorted (deterministic)."""
    if max_int < 0:
        raise ValueError(f"max_int must be >= 0, got {max_int}")
    numbers = [str(i) for i in range(max_int + 1)]
    seen = set(numbers)
    words = {w for t in texts for w in words_of(t)} | set(PUNCTUATION)
    return [*SPECIAL_TOKENS.values(), *numbers, *sorted(w for w in words if w not in seen)]


def vocab_hash(vocab: list[str]) -> str:
    return stable_hash(vocab)


def build_word_tokenizer(
    texts: Iterable[str] | None = None,
    *,
    max_int: int = DEFAULT_MAX_INT,
    domains: Mapping[str, Any] | None = None,
) -> PreTrainedTokenizerBase:
    """A HF fast tokenizer over :func:`vocabulary` of ``texts`` (default: every domain file + fixed strings)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        texts = [*domain_texts(domains), *fixed_texts()]
    vocab = vocabulary([*texts, *fixed_texts()], max_int=max_int)
    tok = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=SPECIAL_TOKENS["unk_token"])
    )
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_RE.pattern), behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins with spaces, then "9 ." -> "9."
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def is_word_level(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is a word-level one (built here, or loaded back from a saved base)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordLevel"


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """The words of ``text`` that ``tokenizer`` maps to ``<unk>``, in order of appearance, without repeats."""
    vocab = tokenizer.get_vocab()
    return list(dict.fromkeys(w for w in words_of(text) if w not in vocab))


def check_words(tokenizer: Any, text: str, *, source: str) -> None:
    """Raise :class:`UnknownWordError` if a word of ``text`` is outside the vocabulary (no-op for BPE)."""
    if not is_word_level(tokenizer):
        return
    missing = unknown_words(tokenizer, text)
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})" if len(missing) > 1 else ""
        raise UnknownWordError(
            f"{source}: word {missing[0]!r} is not in the word-level vocabulary{more}. The base's tokenizer was "
            "built from the domain files it was pretrained with; rebuild the base with the domain files that "
            "hold this word (iga pretrain --domains-dir DIR), or use a BPE student."
        )
