"""``iga pretrain``: build (or find in the cache) the pretrained base of a built-in student."""

from __future__ import annotations

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("pretrain")
@user_errors
def pretrain_cmd(
    student: str = typer.Option(
        None,
        "--student",
        help="Built-in student: micro, tiny, small (default: small; tiny for --regime micro).",
    ),
    regime: str = typer.Option(
        "standard",
        "--regime",
        help="standard: BPE tokenizer, domain text only (S01-S11). micro: word-level tokenizer, a skill base "
        "trained from scratch on neutral-wording M01-M04 problems + every domain's narratives (iga.models.micro_base).",
    ),
    steps: int = typer.Option(
        None,
        "--steps",
        help="Pretraining steps (default: the student's preset; a micro base of another length has no polish phase).",
    ),
    seed: int = typer.Option(0, "--seed"),
    cache_dir: str = typer.Option(
        None, "--cache-dir", help="Where bases are cached (default .iga_cache/bases)."
    ),
    domains_dir: str = typer.Option(
        None, "--domains-dir", help="Extra domain files whose words the base should know."
    ),
) -> None:
    """Train tokenizer + base once (cached): domain text only (standard) or the micro regime's skill base."""
    import json

    from rich.console import Console

    from iga.models.pretrain import BASE_MARKER, ensure_base, pretrain_config

    if regime not in ("standard", "micro"):
        raise typer.BadParameter(f"{regime!r} is not one of standard, micro", param_hint="--regime")
    console = Console()
    if regime == "micro":
        _pretrain_micro(console, student or "tiny", steps, seed, cache_dir, domains_dir)
        return
    student = student or "small"
    cfg = pretrain_config(student, seed=seed, steps=steps)
    with console.status(f"pretraining {student} base ({cfg.steps} steps)…") as status:

        def progress(step: int, total: int, loss: float) -> None:
            status.update(f"pretraining {student} base: step {step}/{total}, loss {loss:.3f}")

        path, built = ensure_base(cfg, cache_dir=cache_dir, domains_dir=domains_dir, progress=progress)
    info = json.loads((path / BASE_MARKER).read_text())
    console.print(
        f"{'built' if built else 'cached'} base: {path}  ({info['num_parameters'] / 1e6:.2f} M parameters, "
        f"final loss {info['final_loss']:.3f}, {info['seconds']} s to build)"
    )


def _pretrain_micro(console, student: str, steps: int | None, seed: int, cache_dir, domains_dir) -> None:
    import dataclasses
    import json

    from iga.models.micro_base import BASE_MARKER, MicroBaseConfig
    from iga.models.micro_base_cache import ensure_micro_base
    from iga.models.students import student_spec
    from iga.training.progress import StepProgress

    student_spec(student)
    cfg = MicroBaseConfig(seed=seed, student=student)
    if steps:  # a base of another length is a try-out: no polish phase on top (it is tuned for the default's)
        cfg = dataclasses.replace(cfg, steps=steps, polish_steps=0)
    total = cfg.steps + cfg.polish_steps
    bar = StepProgress(total=total, start=0, enabled=True, description=f"micro base ({student})")
    path, built = ensure_micro_base(
        cfg,
        cache_dir=cache_dir,
        domains_dir=domains_dir,
        progress=lambda s, t, loss: bar.update(s, loss=loss),
    )
    bar.close()
    info = json.loads((path / BASE_MARKER).read_text())
    console.print(
        f"{'built' if built else 'cached'} micro base: {path}  ({info['num_parameters'] / 1e6:.2f} M parameters, "
        f"vocabulary {info['vocab_size']} words, final loss {info['final_loss']:.3f}, {info['seconds']} s to build)"
    )
