"""Evaluating a run: generate, score and measure consistency (:func:`evaluate_model`), and record it in the run
folder (:func:`evaluate_and_record`: ``completions.jsonl`` and the ``eval`` section of ``result.json``), for the
model a run just trained (:func:`iga.runs.pipeline.run_training`) or a finished run's adapter (:func:`evaluate_run`,
``iga eval --run DIR``)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iga.config import TrainConfig, build_config
from iga.models.prompting import PromptFormat
from iga.runs.folder import RunFolder
from iga.utils.io import read_jsonl

DEFAULT_EVAL_SPLITS = ("val", "id_test", "ood_surface", "ood_depth")
#: Splits made at evaluation time from a stored one: name -> (source split, record id suffix).
#: ``val_nocue`` is ``val`` with the shortcut cues removed (:func:`iga.isomers.shortcuts.strip_cue`): an in-domain
#: validation set that, like ``id_test``, shows no cue — for model selection that does not reward cue reading.
DERIVED_SPLITS = {"val_nocue": ("val", ":nocue"), "val_wrongcue": ("val", ":wrongcue")}
#: Splits a dataset may lack (user-made or imported sets often have no validation split): skipped when absent.
OPTIONAL_SPLITS = ("val", "val_nocue", "val_wrongcue")
LCS_SPLITS = ("id_test", "ood_surface")


def limit_instances(records: Sequence[Mapping], per_skeleton: int | None) -> list[Mapping]:
    """Keep the first ``per_skeleton`` isomer sets of each skeleton (all members of a kept set stay)."""
    if per_skeleton is None:
        return list(records)
    kept: dict[str, list[str]] = defaultdict(list)
    out = []
    for rec in records:
        ids = kept[rec.get("skeleton", "")]
        if rec["instance_id"] not in ids:
            if len(ids) >= per_skeleton:
                continue
            ids.append(rec["instance_id"])
        out.append(rec)
    return out


def derive_split(split: str, records: Sequence[Mapping]) -> list[Mapping]:
    """``records`` of a stored split as evaluated under the name ``split`` (unchanged unless it is derived)."""
    if split not in DERIVED_SPLITS:
        return list(records)
    from iga.isomers.shortcuts import strip_cue, with_wrong_cue

    suffix = DERIVED_SPLITS[split][1]
    if split == "val_wrongcue":  # every rendering shows a cue, and it is always wrong
        out = []
        for r in records:
            wrong = with_wrong_cue(r)
            if wrong is not None:
                out.append({**wrong, "id": f"{r['id']}{suffix}", "split": split})
        return out
    # hidden_shortcut: the cue the model was not shown, for the paired cue-following statistic.
    return [
        {**strip_cue(r), "id": f"{r['id']}{suffix}", "split": split, "hidden_shortcut": r.get("shortcut")}
        for r in records
    ]


def check_eval_splits(splits: Sequence[str]) -> None:
    """Refuse unknown evaluation split names early, naming the allowed ones."""
    from iga.isomers.record import EVAL_SPLITS

    allowed = (*EVAL_SPLITS, *DERIVED_SPLITS)
    unknown = [s for s in splits if s not in allowed]
    if unknown:
        raise ValueError(f"eval_splits: unknown split {unknown[0]!r}; allowed: {', '.join(allowed)}")


def load_run(run_dir: str | Path) -> tuple[TrainConfig, Any, Any]:
    """(config, model with the run's adapter, tokenizer) of a finished run."""
    from peft import PeftModel

    from iga.training.setup import load_base_model

    run = RunFolder(run_dir)
    if not run.config.exists():
        raise FileNotFoundError(f"{run.path} is not a run folder (no {run.config.name})")
    cfg = build_config(TrainConfig, json.loads(run.config.read_text()), source=str(run.config))
    if not run.adapter.exists():
        raise FileNotFoundError(f"{run.path} has no trained adapter yet (training did not finish)")
    base, tokenizer = load_base_model(cfg)
    model = PeftModel.from_pretrained(base, str(run.adapter))
    model.eval()
    return cfg, model, tokenizer


def eval_domains(train_domains: Sequence[str], data_dir: str | Path) -> tuple[list[str], list[str] | None]:
    """(ID domains, held-out domains) for scoring a run trained on ``train_domains``.

    ID = the trained domains that are training domains of the suite; held-out = the suite's held-out domains, read
    from its manifest, so the OOD split means the same in every run of a study, the oracle (trained on them too)
    and runs trained on fewer domains included. Without a manifest: held-out = whatever is not trained on.
    """
    path = Path(data_dir) / "manifest.json"
    if not path.exists():
        return list(train_domains), None
    roles = {d["name"]: d["role"] for d in json.loads(path.read_text()).get("domains", []) if "role" in d}
    if "heldout" not in roles.values():  # a manifest without domain roles (imported or hand-made data)
        return list(train_domains), None
    id_domains = [d for d in train_domains if roles.get(d, "train") == "train"]
    return id_domains, sorted(d for d, role in roles.items() if role == "heldout")


def inference_copy(model: Any) -> Any:
    """A LoRA-merged copy of a PEFT model for evaluation (the trained model is left as it is).

    Merging removes the adapter's extra matmuls and module calls from every generated token; on CPU that
    per-call overhead dominates small models' generation time.
    """
    if hasattr(model, "merge_and_unload"):
        import copy

        return copy.deepcopy(model).merge_and_unload()
    return model


def evaluate_model(
    model: Any,
    tokenizer: Any,
    data_dir: str | Path,
    *,
    train_domains: Sequence[str],
    splits: Sequence[str] = DEFAULT_EVAL_SPLITS,
    per_skeleton: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    fmt: Any = None,
    heldout_domains: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy (strict/flexible, per split/domain/skeleton/family), behaviour and LCS of ``model``.

    ``max_new_tokens=None`` sizes generation from the data: the longest gold CoT of the evaluated records plus a
    margin, so a model that never stops does not cost a fixed large budget per batch.
    """
    from iga.evaluation import collect_anchor_states, compute_lcs_report, evaluate_records, summarise
    from iga.training.run import check_record_words

    check_eval_splits(splits)
    data_dir = Path(data_dir)
    records: list[Mapping] = []
    for split in splits:
        path = data_dir / f"{DERIVED_SPLITS.get(split, (split,))[0]}.jsonl"
        if not path.exists() and split in OPTIONAL_SPLITS:
            continue
        if not path.exists():
            raise FileNotFoundError(f"evaluation split not found: {path}")
        split_records = limit_instances(read_jsonl(path), per_skeleton)
        if not split_records and split in OPTIONAL_SPLITS:
            continue
        if not split_records:
            raise ValueError(f"{path}: the split is empty")
        check_record_words(tokenizer, split_records, str(path))
        records.extend(derive_split(split, split_records))
    if max_new_tokens is None:
        longest = max(len(tokenizer(r["gold_cot"], add_special_tokens=False)["input_ids"]) for r in records)
        max_new_tokens = longest + 16
    model = inference_copy(model)
    t0 = time.perf_counter()
    fmt = fmt if fmt is not None else PromptFormat()
    scores = evaluate_records(
        model,
        tokenizer,
        records,
        fmt=fmt,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    gen_seconds = time.perf_counter() - t0
    if heldout_domains is None:
        heldout = sorted({r["domain"] for r in records} - set(train_domains))
    else:
        heldout = sorted(heldout_domains)
    summary = summarise(records, scores, list(train_domains), heldout)
    lcs_records = [r for r in records if r.get("split") in LCS_SPLITS]
    lcs = None
    if lcs_records:
        states = collect_anchor_states(model, tokenizer, lcs_records, fmt=fmt, batch_size=batch_size)
        report = compute_lcs_report(
            states,
            [r["instance_id"] for r in lcs_records],
            domains=[r["domain"] for r in lcs_records],
            train_domains=list(train_domains),
            extra_settings={"pooling": states.pooling, "n_fallback": states.n_fallback},
        )
        lcs = report.to_dict()
    return {
        "summary": summary,
        "lcs": lcs,
        "n_records": len(records),
        "generation_seconds": round(gen_seconds, 2),
        "max_new_tokens": max_new_tokens,
        "completions": [
            {
                "id": s.id,
                "completion": s.completion,
                "strict": s.strict.correct,
                "flexible": s.flexible.correct,
            }
            for s in scores
        ],
    }


def evaluate_and_record(
    run: RunFolder,
    cfg: TrainConfig,
    model: Any,
    tokenizer: Any,
    *,
    splits: Sequence[str] = DEFAULT_EVAL_SPLITS,
    per_skeleton: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` (trained with ``cfg``) and record it in ``run``: the completions go to
    ``completions.jsonl``, the metrics into the ``eval`` section of ``result.json``; returns the updated result.

    ``kwargs`` go to :func:`evaluate_model` (``max_new_tokens``, ``batch_size``).
    """
    from iga.models.chat import make_prompt_format
    from iga.utils.io import atomic_write_jsonl

    id_domains, heldout = eval_domains(cfg.train_domains, cfg.data_dir)
    ev = evaluate_model(
        model,
        tokenizer,
        cfg.data_dir,
        train_domains=id_domains,
        heldout_domains=heldout,
        splits=splits,
        per_skeleton=per_skeleton,
        progress=progress,
        fmt=make_prompt_format(cfg.prompt_format, tokenizer),
        **kwargs,
    )
    atomic_write_jsonl(run.completions, ev.pop("completions"))
    return run.update_result(eval=ev)


def evaluate_run(
    run_dir: str | Path,
    *,
    splits: Sequence[str] = DEFAULT_EVAL_SPLITS,
    per_skeleton: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate a finished run's adapter and record it (:func:`evaluate_and_record`); returns the metrics."""
    cfg, model, tokenizer = load_run(run_dir)
    result = evaluate_and_record(
        RunFolder(run_dir),
        cfg,
        model,
        tokenizer,
        splits=splits,
        per_skeleton=per_skeleton,
        progress=progress,
        **kwargs,
    )
    return result["eval"]
