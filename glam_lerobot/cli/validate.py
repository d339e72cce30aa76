"""CLI for `glam-lerobot validate`: parses, then calls glam_lerobot.validate (pulling a Hub dataset first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from glam_lerobot.cli.errors import fail as _fail


def validate(
    dataset: Annotated[str, typer.Argument(help="a dataset folder, or REPO_ID[@REVISION] on the Hub")],
    deep: Annotated[
        bool, typer.Option("--deep", help="also decode every video: frame counts, frozen cameras (slower)")
    ] = False,
    chunk: Annotated[int, typer.Option("--chunk", help="warn for episodes shorter than this action chunk")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    problems: Annotated[bool, typer.Option("--problems", help="list only the WARN and FAIL rows")] = False,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Hub URL (default: HF_ENDPOINT)")] = None,
    token: Annotated[str | None, typer.Option("--token", help="Hub token", show_default=False)] = None,
) -> None:
    """Check a LeRobot v3 dataset for what silently breaks training.

    Reads meta/ and the parquet rows (with --deep every video too) of DATASET: a local root, or REPO_ID[@REV]
    pulled from the Hub into LeRobot's cache. Prints one row per check: PASS, WARN or FAIL with the episode and
    feature. Checks: totals and episode indices, timestamps at 1/fps (LeRobot's 1e-4 s tolerance), NaN/inf,
    stats present, finite and covering the data, video segments spanning their episodes, constant cameras,
    binary masks, latent.* with its pads, mixture.* columns, episodes shorter than --chunk; with --deep, decoded
    frames = rows and frozen cameras. Exits 1 when any check FAILs (for CI).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from glam_lerobot import validate as v

    root = Path(dataset).expanduser()
    if not root.exists():
        if "/" not in dataset or dataset.startswith((".", "/")):
            _fail(f"{dataset}: no such folder (a Hub dataset is given as namespace/name[@revision])")
        from glam_lerobot import hub

        repo_id, _, revision = dataset.partition("@")
        try:
            root = hub.pull_dataset(repo_id, revision or None, token=token, endpoint=endpoint)
        except hub.HubError as e:
            _fail(e)
    try:
        report = v.validate(root, deep=deep, chunk=chunk)
    except FileNotFoundError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table(show_lines=False)
        for col in ("status", "check", "episode", "feature", "detail"):
            table.add_column(col, overflow="fold")
        colour = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}
        for r in report.rows:
            if r.status == "PASS" and problems:
                continue
            ep = "" if r.episode is None else str(r.episode)
            table.add_row(f"[{colour[r.status]}]{r.status}[/]", r.check, ep, escape(r.feature or ""), escape(r.message))
        console = Console(soft_wrap=False)
        console.print(table)
        for line in v.lines(report):
            console.print(line, highlight=False)
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
