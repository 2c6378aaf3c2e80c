"""Accuracy tables and the headline summary of one evaluation, from records and their :class:`RecordScore`.

Everything returned is plain dicts/lists of JSON types, ready for a results file. Headline definitions
(benchmarks.md §4.7): ID accuracy = split ``id_test`` restricted to train domains; OOD accuracy = split
``ood_surface`` restricted to held-out domains; OOD-depth accuracy = split ``ood_depth`` (all its records).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from iga.evaluation._arrays import multi_member_sets
from iga.evaluation.behaviour import behavioural_report, id_ood_gap
from iga.evaluation.scores import MODES, RecordScore
from iga.isomers.record import EVAL_SPLITS, FAMILIES, SPLITS

#: Record fields an accuracy table can be grouped by.
GROUP_FIELDS = ("split", "domain", "skeleton", "family", "answer_type", "instance_id", "generator_version")

_ORDER = {"split": SPLITS, "family": FAMILIES}
_MISSING = "<missing>"  # group name for records that lack the grouping field (e.g. imported records)

Pair = tuple[Mapping, RecordScore]


def pair_scores(
    records: Iterable[Mapping], scores: Iterable[RecordScore] | Mapping[str, RecordScore]
) -> list[Pair]:
    """Match each record with its score by ``id`` (scores for other ids are ignored).

    Raises ``ValueError`` naming the record id when a record has no score or two scores share an id.
    """
    by_id: dict[str, RecordScore] = {}
    for score in scores.values() if isinstance(scores, Mapping) else scores:
        if score.id in by_id:
            raise ValueError(f"scores: two scores for record id {score.id!r}")
        by_id[score.id] = score
    pairs = []
    for i, record in enumerate(records):
        if "id" not in record:
            raise ValueError(f"records[{i}]: missing field 'id'")
        rid = str(record["id"])
        if rid not in by_id:
            raise ValueError(f"scores: no score for record id {rid!r}")
        pairs.append((record, by_id[rid]))
    return pairs


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _stats(pairs: Sequence[Pair]) -> dict[str, Any]:
    return {
        "n": len(pairs),
        **{f"accuracy_{m}": _rate([s.mode(m).correct for _, s in pairs]) for m in MODES},
        **{f"extraction_failure_{m}": _rate([s.mode(m).failed_extraction for _, s in pairs]) for m in MODES},
    }


def _sort_key(field: str, value: Any) -> tuple:
    order = _ORDER.get(field, ())
    if value is None:
        return (2, 0, "")
    if value in order:
        return (0, order.index(value), "")
    return (1, 0, str(value))


def _group(pairs: Sequence[Pair], by: Sequence[str]) -> dict[tuple, list[Pair]]:
    groups: dict[tuple, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(tuple(pair[0].get(f) for f in by), []).append(pair)
    return dict(
        sorted(groups.items(), key=lambda kv: tuple(_sort_key(f, v) for f, v in zip(by, kv[0], strict=True)))
    )


def accuracy_table(
    records: Iterable[Mapping],
    scores: Iterable[RecordScore] | Mapping[str, RecordScore],
    by: Sequence[str] = ("split",),
) -> list[dict[str, Any]]:
    """One row per combination of the ``by`` fields: the field values, ``n``, accuracy and extraction-failure
    rate in both modes. Records lacking a ``by`` field are grouped under ``None``.

    >>> from iga.evaluation.scores import ModeScore
    >>> ok, bad = ModeScore(True, False), ModeScore(False, True)
    >>> recs = [{"id": "a", "split": "id_test"}, {"id": "b", "split": "id_test"}]
    >>> rows = accuracy_table(recs, [RecordScore("a", "", ok, ok), RecordScore("b", "", bad, ok)])
    >>> rows[0]["accuracy_strict"], rows[0]["accuracy_flexible"], rows[0]["extraction_failure_strict"]
    (0.5, 1.0, 0.5)
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by:
        raise ValueError(f"by: give at least one field; allowed: {', '.join(GROUP_FIELDS)}")
    for f in by:
        if f not in GROUP_FIELDS:
            raise ValueError(f"by: unknown field {f!r}; allowed: {', '.join(GROUP_FIELDS)}")
    return [
        {**dict(zip(by, key, strict=True)), **_stats(group)}
        for key, group in _group(pair_scores(records, scores), by).items()
    ]


def _accuracy(pairs: Iterable[Pair], mode: str, keep: Callable[[Mapping], bool]) -> tuple[float | None, int]:
    flags = [s.mode(mode).correct for r, s in pairs if keep(r)]
    return _rate(flags), len(flags)


def _headline(pairs: Sequence[Pair], mode: str, train: set, heldout: set) -> dict[str, Any]:
    id_acc, n_id = _accuracy(pairs, mode, lambda r: r.get("split") == "id_test" and r.get("domain") in train)
    ood_acc, n_ood = _accuracy(
        pairs, mode, lambda r: r.get("split") == "ood_surface" and r.get("domain") in heldout
    )
    depth_acc, n_depth = _accuracy(pairs, mode, lambda r: r.get("split") == "ood_depth")
    # In-domain validation (the val split renders training domains only): what model selection may look at.
    val_acc, n_val = _accuracy(pairs, mode, lambda r: r.get("split") == "val" and r.get("domain") in train)
    # The same instances with their shortcut cues removed (evaluated as the derived split ``val_nocue``).
    nocue_acc, n_nocue = _accuracy(
        pairs, mode, lambda r: r.get("split") == "val_nocue" and r.get("domain") in train
    )
    gap, relative = (
        id_ood_gap(id_acc, ood_acc) if id_acc is not None and ood_acc is not None else (None, None)
    )
    # Shortcut reliance, paired: on val problems whose cue is wrong, how often the answer is the cue's value —
    # with the cue shown (val) and on the same problems without it (val_nocue keeps the cue as hidden_shortcut).
    follow, n_wrong = _cue_follow(pairs, mode, train, "val", "shortcut")
    follow_nocue, _ = _cue_follow(pairs, mode, train, "val_nocue", "hidden_shortcut")
    # Every training-domain val problem with a wrong cue (the derived split ``val_wrongcue``).
    wrong_acc, n_wrongcue = _accuracy(
        pairs, mode, lambda r: r.get("split") == "val_wrongcue" and r.get("domain") in train
    )
    wrongcue_follow, _ = _cue_follow(pairs, mode, train, "val_wrongcue", "shortcut")
    return {
        "id_accuracy": id_acc,
        "ood_accuracy": ood_acc,
        "ood_depth_accuracy": depth_acc,
        "val_accuracy": val_acc,
        "val_nocue_accuracy": nocue_acc,
        "gap": gap,
        "relative_gap": relative,
        "n_id": n_id,
        "n_ood": n_ood,
        "n_ood_depth": n_depth,
        "n_val": n_val,
        "n_val_nocue": n_nocue,
        "cue_follow": follow,
        "cue_follow_nocue": follow_nocue,
        "n_wrong_cue": n_wrong,
        "val_wrongcue_accuracy": wrong_acc,
        "wrongcue_follow": wrongcue_follow,
        "n_val_wrongcue": n_wrongcue,
    }


def _cue_follow(
    pairs: Sequence[Pair], mode: str, train: set, split: str, field: str
) -> tuple[float | None, int]:
    """Share of ``split`` answers (training domains) equal to the value of their wrong shortcut cue."""
    from iga.isomers.answers import answers_match

    flags = []
    for r, s in pairs:
        cue = r.get(field)
        if r.get("split") != split or r.get("domain") not in train or not cue or cue.get("correct", True):
            continue
        value = s.mode(mode).value
        flags.append(
            value is not None
            and answers_match(
                value, cue["value"], r["answer_type"], mode=mode, label_space=r.get("label_space")
            )
        )
    return _rate(flags), len(flags)


def _by(pairs: Sequence[Pair], field: str) -> list[tuple[Any, list[Pair]]]:
    return [(key[0], group) for key, group in _group(pairs, (field,)).items()]


def _name(value: Any) -> str:
    # JSON object keys must be strings, and sorting mixed None/str keys would fail when the results are written.
    return _MISSING if value is None else str(value)


def _behaviour(pairs: Sequence[Pair], mode: str) -> dict[str, Any]:
    out = {}
    for split, group in _by(pairs, "split"):
        missing = [r["id"] for r, _ in group if "instance_id" not in r]
        if missing:
            raise ValueError(
                f"records: record id {missing[0]!r} has no 'instance_id' (needed to form isomer sets)"
            )
        set_ids = [r["instance_id"] for r, _ in group]
        if split in EVAL_SPLITS and multi_member_sets(set_ids)[0]:
            out[split] = behavioural_report(
                set_ids, [s.mode(mode).correct for _, s in group], [s.mode(mode).value for _, s in group]
            )
    return out


def summarise(
    records: Iterable[Mapping],
    scores: Iterable[RecordScore] | Mapping[str, RecordScore],
    train_domains: Collection[str],
    heldout_domains: Collection[str],
    *,
    mode: str = "strict",
) -> dict[str, Any]:
    """Headline numbers (in ``mode``) plus breakdowns, as one JSON-serialisable dict.

    Keys: ``id_accuracy``, ``ood_accuracy``, ``ood_depth_accuracy``, ``gap`` (ID − OOD), ``relative_gap``,
    ``val_accuracy`` and ``val_nocue_accuracy`` (in-domain validation with and without shortcut cues),
    ``cue_follow`` / ``cue_follow_nocue`` (share of answers equal to a wrong cue's value, with the cue shown / on
    the same problems without it), their ``n_*`` counts; ``overall`` (both modes, failure rates); ``by_split``
    (both modes); ``by_family`` and
    ``by_skeleton`` (the headline numbers per group); ``by_domain`` (accuracy per split); ``behaviour`` (set-level
    consistency per evaluation split, sets = ``instance_id``). ``None`` marks a number with no records behind it.
    """
    if mode not in MODES:
        raise ValueError(f"mode: unknown {mode!r}; allowed: {', '.join(MODES)}")
    train, heldout = set(train_domains), set(heldout_domains)
    if train & heldout:
        raise ValueError(f"train_domains and heldout_domains overlap: {sorted(train & heldout)}")
    pairs = pair_scores(records, scores)
    return {
        "mode": mode,
        "train_domains": sorted(train),
        "heldout_domains": sorted(heldout),
        **_headline(pairs, mode, train, heldout),
        "overall": _stats(pairs),
        "by_split": {_name(k): _stats(g) for k, g in _by(pairs, "split")},
        "by_family": {_name(k): _headline(g, mode, train, heldout) for k, g in _by(pairs, "family")},
        "by_skeleton": {_name(k): _headline(g, mode, train, heldout) for k, g in _by(pairs, "skeleton")},
        "by_domain": {
            _name(k): {
                _name(split): _rate([sc.mode(mode).correct for _, sc in sub])
                for split, sub in _by(g, "split")
            }
            for k, g in _by(pairs, "domain")
        },
        "behaviour": _behaviour(pairs, mode),
    }
