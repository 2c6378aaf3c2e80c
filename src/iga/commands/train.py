"""``iga train`` and ``iga eval``: distil into a LoRA student with one algorithm; evaluate a finished run."""

from __future__ import annotations

from pathlib import Path

import typer

from iga.commands._common import parse_overrides, user_errors
from iga.utils.dicts import deep_merge

app = typer.Typer()


@app.command("train")
@user_errors
def train_cmd(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of TrainConfig fields."),
    data: str | None = typer.Option(
        None, "--data", help="Built IsoBench folder (train.jsonl, manifest.json)."
    ),
    out: str | None = typer.Option(
        None, "--out", help="Run folder (config, log, checkpoint, adapter, result)."
    ),
    algorithm: str | None = typer.Option(
        None, "--algorithm", "-a", help="erm, iga, ... (`iga algorithms list`)."
    ),
    base: str | None = typer.Option(
        None, "--base", help="Pretrained base folder (`iga pretrain`) or a local HF checkpoint."
    ),
    steps: int | None = typer.Option(None, "--steps"),
    seed: int | None = typer.Option(None, "--seed"),
    opt: list[str] | None = typer.Option(
        None, "--opt", help="Algorithm option, e.g. --opt tau=5 (repeatable)."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Any config field, e.g. --set lora.r=16 (repeatable)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate when training ends."),
    per_skeleton: int | None = typer.Option(
        None, "--eval-per-skeleton", help="Isomer sets per skeleton in eval."
    ),
) -> None:
    """Train one run; writes config.json, log.jsonl, checkpoint.pt, adapter/ and result.json into --out."""
    from iga.config import TrainConfig, build_config, load_yaml
    from iga.runs.pipeline import run_training

    data_dict = load_yaml(config) if config else {}
    cli = {
        k: v
        for k, v in {
            "data_dir": data,
            "out_dir": out,
            "algorithm": algorithm,
            "base_dir": base,
            "steps": steps,
            "seed": seed,
        }.items()
        if v is not None
    }
    data_dict = deep_merge(deep_merge(data_dict, cli), parse_overrides(set_, what="--set"))
    options = parse_overrides(opt, what="--opt")
    if options:
        data_dict["algorithm_options"] = deep_merge(data_dict.get("algorithm_options", {}), options)
    cfg = build_config(TrainConfig, data_dict, source=str(config or "command line"))
    result = run_training(cfg, resume=resume, evaluate=evaluate, per_skeleton=per_skeleton)
    if "rank" in result:  # a non-zero rank of a multi-process launch: rank 0 reports
        return
    from iga.commands.report import print_run_summary

    print_run_summary(cfg.out_dir, result)


@app.command("eval")
@user_errors
def eval_cmd(
    run: Path = typer.Option(..., "--run", help="A run folder written by `iga train`."),
    split: list[str] | None = typer.Option(
        None, "--split", help="Splits to evaluate (repeatable); val_nocue = val without its shortcut cues."
    ),
    per_skeleton: int | None = typer.Option(
        None, "--per-skeleton", help="Isomer sets per skeleton (default all)."
    ),
    batch_size: int = typer.Option(32, "--batch-size"),
    external: list[str] | None = typer.Option(
        None,
        "--external",
        help="Instead of IsoBench: reasoning_gym:TASK (repeatable), as `iga eval-external`.",
    ),
    n: int = typer.Option(50, "--n", help="With --external: items per task."),
) -> None:
    """Evaluate a run: accuracy per split/domain/skeleton/family, behaviour, LCS; merged into result.json."""
    from iga.commands.report import print_run_summary

    if external:
        from iga.commands.external import eval_external

        eval_external(
            task=external,
            records=None,
            run=run,
            student=None,
            n=n,
            seed=0,
            prompt_format="auto",
            max_new_tokens=256,
            batch_size=min(batch_size, 8),
            out=None,
        )
        return
    from iga.runs.evaluate import DEFAULT_EVAL_SPLITS, evaluate_run
    from iga.runs.folder import RunFolder

    evaluate_run(
        run, splits=tuple(split or DEFAULT_EVAL_SPLITS), per_skeleton=per_skeleton, batch_size=batch_size
    )
    print_run_summary(run, RunFolder(run).read_result())
