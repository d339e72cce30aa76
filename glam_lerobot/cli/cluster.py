"""The options every writing command shares for where its shards run (glam_lerobot.executors)."""

from __future__ import annotations

import typer

PANEL = "Where the work runs (datatrove)"
OPTION_NAMES = (
    "executor",
    "tasks",
    "partition",
    "time",
    "cpus_per_task",
    "gpus_per_task",
    "env_command",
    "ray_address",
)

EXECUTOR = typer.Option(
    "local",
    help="local (processes on this machine), slurm (a job array and a dependent merge job) or ray",
    rich_help_panel=PANEL,
)
TASKS = typer.Option(
    None,
    help="shards the write is cut into \\[default: one per process locally, one per 20 episodes on a cluster]",
    rich_help_panel=PANEL,
)
PARTITION = typer.Option(None, help="slurm: the partition the tasks run on", rich_help_panel=PANEL)
TIME = typer.Option("04:00:00", help="slurm: time limit of each task", rich_help_panel=PANEL)
CPUS = typer.Option(2, help="slurm, ray: CPUs per task (one writer keeps about two busy)", rich_help_panel=PANEL)
GPUS = typer.Option(0, help="slurm, ray: GPUs per task", rich_help_panel=PANEL)
ENV_COMMAND = typer.Option(
    None,
    help="slurm: shell line that sets up the environment on a node \\[default: activate this virtual environment]",
    rich_help_panel=PANEL,
)
RAY_ADDRESS = typer.Option(
    None, help="ray: address of a running cluster \\[default: start a local instance]", rich_help_panel=PANEL
)


def executor_from(
    executor: str,
    tasks: int | None,
    partition: str | None,
    time: str,
    cpus_per_task: int,
    gpus_per_task: int,
    env_command: str | None,
    ray_address: str | None,
):
    """The executor the options describe; a clear error (exit 1) for a bad combination."""
    from glam_lerobot.cli.errors import fail
    from glam_lerobot.executors import Executor

    try:
        return Executor(
            kind=executor,
            tasks=tasks,
            partition=partition,
            time=time,
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            env_command=env_command,
            ray_address=ray_address,
        )
    except ValueError as exc:
        fail(str(exc))
