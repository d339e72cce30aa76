"""CLI for the sim stage: record scripted-expert datasets in the MuJoCo worlds, replay recorded episodes."""

from __future__ import annotations

from pathlib import Path

import typer

from glam_lerobot import schema
from glam_lerobot.cli import cluster
from glam_lerobot.cli.errors import fail as _fail
from glam_lerobot.cli.errors import workers_value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    sim = typer.Typer(
        help="Simulated Kinova Gen3 and floating UMI-gripper worlds (MuJoCo): record expert datasets, replay them.",
        no_args_is_help=True,
    )
    sim.command("record")(record)
    sim.command("replay")(replay)
    app.add_typer(sim, name="sim")


def record(
    embodiment: str = typer.Option(
        ..., help="kinova (Gen3 arm(s): state + joint actions) or umi (floating gripper(s), no actions)"
    ),
    task: str = typer.Option(..., help="lift | pick_place | knock_down | stack_two | stack_three"),
    episodes: int = typer.Option(..., help="episodes to attempt; failed expert runs are dropped and counted"),
    seed: int = typer.Option(
        0, help="episode i starts from seed SEED+i (same seed = same placement on both embodiments)"
    ),
    root: Path = typer.Option(..., help="output folder of the new dataset (must not hold another dataset)"),
    repo_id: str = typer.Option(
        None, help="repo id written into the dataset \\[default: local/glam-sim-EMBODIMENT-TASK]"
    ),
    image_size: int = typer.Option(schema.DEFAULT_IMAGE_SIZE, help="square camera frames, pixels"),
    masks: bool = typer.Option(
        False, "--masks", help="also write ground-truth object masks (mask.overhead, mask.front)"
    ),
    workers: str = typer.Option(
        "auto",
        callback=workers_value,
        help="writer processes, or 'auto' (one per two cores, and only with 40+ episodes each: a spawned worker "
        "costs seconds of imports, and one process already overlaps simulation with encoding)",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="replace a dataset at ROOT recorded with other settings (it stays until the new one is finished)",
    ),
    executor: str = cluster.EXECUTOR,
    tasks: int = cluster.TASKS,
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """Run the scripted expert and write a LeRobot v3 dataset.

    Writes ROOT: observation.images.{overhead,front} (video), observation.ee_pose, for kinova observation.state and
    action (joint position targets + gripper command), sim.qpos, with --masks mask.{overhead,front}; meta/glam.json
    holds embodiment, task and the seed of every episode.
    """
    from glam_lerobot.sim.record import record as run_record
    from glam_lerobot.sim.record import validate_request

    try:
        validate_request(task, embodiment, episodes, image_size)
        summary = run_record(
            task,
            embodiment,
            episodes,
            seed,
            root,
            repo_id=repo_id,
            image_size=image_size,
            masks=masks,
            workers=workers,
            overwrite=overwrite,
            executor=cluster.executor_from(
                executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address
            ),
        )
    except (ValueError, FileExistsError) as exc:
        _fail(str(exc))
    for line in summary.lines():
        typer.echo(line)


def replay(
    root: Path = typer.Option(..., help="a Kinova dataset written by `sim record`"),
    episode: int = typer.Option(0, help="episode index in the dataset"),
) -> None:
    """Feed a recorded Kinova episode's actions back into the simulator from the same seed.

    Reads ROOT (action, sim.qpos, meta/glam.json); writes nothing. Reports whether the outcome reproduces
    (task success and every object on its recorded trajectory); exits 1 if it does not.
    """
    from glam_lerobot.sim.replay import replay_episode

    try:
        out = replay_episode(root, episode)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(
        f"{out['task']} episode {episode} (seed {out['seed']}): success={out['success']} "
        f"max object deviation {out['max_object_error'] * 1000:.3f} mm"
    )
    for name, (rec, rep) in out["final_positions"].items():
        typer.echo(f"  {name}: recorded end {rec.round(4).tolist()}  replayed end {rep.round(4).tolist()}")
    typer.echo("reproduced" if out["reproduced"] else "NOT reproduced")
    if not out["reproduced"]:
        raise typer.Exit(1)
