"""``iga pretrain``: build (or find in the cache) the pretrained base of a built-in student."""

from __future__ import annotations

import typer

from iga.commands._common import user_errors

app = typer.Typer()


@app.command("pretrain")
@user_errors
def pretrain_cmd(
    student: str = typer.Option("small", "--student", help="Built-in student: micro, tiny, small."),
    steps: int = typer.Option(None, "--steps", help="Pretraining steps (default: the student's preset)."),
    seed: int = typer.Option(0, "--seed"),
    cache_dir: str = typer.Option(
        None, "--cache-dir", help="Where bases are cached (default .iga_cache/bases)."
    ),
    domains_dir: str = typer.Option(
        None, "--domains-dir", help="Extra domain files whose words the base should know."
    ),
) -> None:
    """Train tokenizer + base on domain-covering text without any task problem (see iga.models.corpus)."""
    import json

    from rich.console import Console

    from iga.models.pretrain import BASE_MARKER, ensure_base, pretrain_config

    cfg = pretrain_config(student, seed=seed, steps=steps)
    console = Console()
    with console.status(f"pretraining {student} base ({cfg.steps} steps)…") as status:

        def progress(step: int, total: int, loss: float) -> None:
            status.update(f"pretraining {student} base: step {step}/{total}, loss {loss:.3f}")

        path, built = ensure_base(cfg, cache_dir=cache_dir, domains_dir=domains_dir, progress=progress)
    info = json.loads((path / BASE_MARKER).read_text())
    console.print(
        f"{'built' if built else 'cached'} base: {path}  ({info['num_parameters'] / 1e6:.2f} M parameters, "
        f"final loss {info['final_loss']:.3f}, {info['seconds']} s to build)"
    )
