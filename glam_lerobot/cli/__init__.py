"""`glam-lerobot`: one sub-command per arrow of the data flow. Each module here only parses and calls."""

from __future__ import annotations

import typer

from glam_lerobot.cli import benchmark, hub, ingest, masks, pipeline, sim, validate, world_model

app = typer.Typer(
    name="glam-lerobot",
    help=(
        "GLAM on LeRobot datasets: record or ingest demonstrations, add object masks, train the grounded "
        "latent-action world model, relabel every source with latent actions, and share it all on the Hub."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for _module in (sim, ingest, validate, hub, masks, world_model, pipeline, benchmark):
    _module.register(app)
