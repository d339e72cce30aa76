"""How every command reports bad input: one clear line on stderr, exit status 1, no traceback."""

from __future__ import annotations

import typer


def fail(message: object) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def workers_value(value: str) -> str:
    """typer callback of every --workers option: a number of processes or 'auto', checked before any work."""
    from glam_lerobot.writing import parse_workers

    try:
        return str(parse_workers(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
