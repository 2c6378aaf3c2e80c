"""CLI sub-command groups. Each module exposes a ``typer.Typer`` named ``app``; heavy imports stay inside commands."""
