"""How every command reports bad input: one clear line on stderr, exit status 1, no traceback."""

from __future__ import annotations

import typer


def fail(message: object) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
