"""CLI for the ingest stage: raw recordings (UMI replay buffers, ROS bags, HDF5 episode files) -> LeRobot datasets."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from glam_lerobot import schema
from glam_lerobot.cli import cluster
from glam_lerobot.cli.errors import fail as _fail
from glam_lerobot.cli.errors import workers_value

_COMMON = (
    "Every episode is checked before it is written (lengths, NaN/inf, timestamps, missing keys or topics, image sizes); an "
    "error names the file, episode and field, and --skip-bad drops bad episodes and lists them instead. Episodes are "
    "written in parallel shards (--workers) merged by LeRobot's aggregate; an interrupted ingest resumes from "
    "ROOT.partial/ when run again, and ROOT appears only when complete. Provenance (format, files + sha256, the "
    "mapping) goes to ROOT/meta/glam.json and the dataset card."
)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    ingest = typer.Typer(
        help="Turn raw recordings into canonical LeRobot v3 datasets. Start with `inspect` (what a file holds; "
        "--write-mapping guesses a bag mapping), then: `rosbag` reads Kinova teleop bags (ROS 1 .bag, ROS 2 "
        ".mcap/.db3; `kinova` is the same command), `umi` reads UMI replay buffers (.zarr / .zarr.zip), `hdf5` "
        "reads ALOHA and robomimic episode files.",
        no_args_is_help=True,
    )
    ingest.command("inspect")(inspect)
    ingest.command("umi")(umi)
    ingest.command("rosbag")(rosbag)
    ingest.command("kinova", help="Kinova teleop bags: the same command as `ingest rosbag`.")(rosbag)
    ingest.command("hdf5")(hdf5)
    app.add_typer(ingest, name="ingest")


def inspect(
    files: list[Path] = typer.Argument(..., help="bags (.bag, .mcap, .db3, bag folders), UMI buffers, HDF5 files"),
    as_json: bool = typer.Option(False, "--json", help="print everything as JSON"),
    write_mapping: Path | None = typer.Option(
        None, "--write-mapping", help="write a rosbag mapping guessed from the bags' topics to this YAML file"
    ),
) -> None:
    """Show what recordings hold before ingesting them, and guess a topic mapping for bags.

    Bags: every topic with type, count, rate, header-stamp quality (zero stamps, stamps going backwards, gaps),
    image encoding and size, JointState joint names. UMI buffers: arrays, shapes, chunks, episodes, fps. HDF5:
    the layout recognised (ALOHA / robomimic) and its datasets. --write-mapping guesses the arm's JointState (the
    Gen3's joint_1..7), the 2F-85 knuckle, a command topic (JointTrajectory, Float64MultiArray, or a JointState
    named like a command), a PoseStamped ee topic and the cameras (overhead / front by name, else in order),
    with a comment on every guess; `ingest rosbag --mapping FILE` then reads the bags.
    """
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from glam_lerobot.ingest import inspect as insp
    from glam_lerobot.writing import EpisodeError

    try:
        reports = [insp.inspect_file(f) for f in files]
    except (FileNotFoundError, ValueError, EpisodeError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(reports, indent=2, default=str))
    else:
        console = Console(soft_wrap=False)
        for r in reports:
            extra = {k: v for k, v in r.items() if k not in ("path", "kind", "topics", "arrays", "datasets")}
            table = Table(title=escape(f"{r['path']} ({r['kind']}) {extra or ''}"), title_justify="left")
            for col in ("name", "type", "count / shape", "rate Hz", "stamps / chunks", "detail"):
                table.add_column(col, overflow="fold")
            for row in insp.summary_rows(r):
                table.add_row(*map(escape, row))
            console.print(table)
    if write_mapping is not None:
        try:
            mapping, notes = insp.guess_mapping(reports)
        except ValueError as exc:
            _fail(exc)
        write_mapping.write_text(insp.mapping_yaml(mapping, notes, [str(f) for f in files]))
        for n in notes:
            typer.echo(f"guessed {n}", err=as_json)
        typer.echo(
            f"wrote {write_mapping}; ingest with: glam-lerobot ingest rosbag ... --mapping {write_mapping}", err=as_json
        )


def _run(
    make_plan,
    root: Path,
    repo_id: str | None,
    default_repo: str,
    workers: str,
    skip_bad: bool,
    overwrite: bool = False,
    executor=None,
) -> None:
    from glam_lerobot.writing import EpisodeError

    try:
        plan = make_plan()
        summary = plan.write(
            root,
            repo_id or default_repo,
            workers=workers,
            skip_bad=skip_bad,
            overwrite=overwrite,
            command=shlex.join(["glam-lerobot", *sys.argv[1:]]),
            executor=executor,
        )
    except (EpisodeError, ValueError, FileExistsError, RuntimeError) as exc:
        _fail(str(exc))
    for line in summary.lines():
        typer.echo(line)
    if not summary.submitted:
        typer.echo(f"provenance: {Path(root) / schema.GLAM_META_PATH}")


def _size(spec: str | None):
    from glam_lerobot.ingest import parse_image_size

    try:
        return parse_image_size(spec)
    except ValueError:
        _fail(f"--image-size must look like 224x224, got {spec!r}")


ROOT = typer.Option(..., help="output folder of the new dataset (must not hold another dataset)")
REPO = typer.Option(None, help="repo id written into the dataset \\[default: local/<format>]")
FPS = typer.Option(schema.DEFAULT_FPS, help="frames per second of the dataset's grid")
SIZE = typer.Option(None, help="resize every camera to HxW (e.g. 224x224); default: keep the recorded size")
WORKERS = typer.Option(
    "auto",
    callback=workers_value,
    help="worker processes, each writing a shard, or 'auto' (1 unless there are 40+ episodes per two cores)",
)
SKIP = typer.Option(False, "--skip-bad", help="drop bad episodes and list them in the summary instead of stopping")
OVERWRITE = typer.Option(
    False,
    "--overwrite",
    help="replace a dataset at ROOT (or an unfinished ROOT.partial) written "
    "from other input; the old one stays until the new one is finished",
)


def umi(
    inputs: list[Path] = typer.Argument(..., help="UMI replay buffers: dataset.zarr.zip files or .zarr folders"),
    root: Path = ROOT,
    repo_id: str = REPO,
    fps: int = FPS,
    camera_map: str = typer.Option(
        "camera0=front,camera1=overhead",
        help="buffer camera -> dataset camera (overhead | front). UMI's cameras are wrist-mounted GoPros, so the "
        "names are slots, not viewpoints; a camera left out of the map is not written",
    ),
    source_fps: float = typer.Option(59.94, help="frame rate of the buffer (GoPro: 59.94)"),
    image_size: str = SIZE,
    task: str = typer.Option("UMI demonstration", help="task string of every episode"),
    check_all_frames: bool = typer.Option(
        False,
        "--check-all-frames",
        help="also decode the frames the fps grid skips and report damage there as warnings (6x more decoding "
        "at 10 fps); the frames the dataset uses are always decoded, so damage there is an error",
    ),
    workers: str = WORKERS,
    skip_bad: bool = SKIP,
    overwrite: bool = OVERWRITE,
    executor: str = cluster.EXECUTOR,
    tasks: int = cluster.TASKS,
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """UMI replay buffers -> a dataset without robot state or actions.

    Reads data/camera{i}_rgb (JpegXL), robot{i}_eef_pos, robot{i}_eef_rot_axis_angle, robot{i}_gripper_width and
    meta/episode_ends; bimanual buffers give two arms. Writes ROOT with the mapped cameras (video) and
    observation.ee_pose per gripper (position, rotation 6D, width in metres, 0 = closed), on the FPS grid by taking
    the nearest recorded frame (no interpolation). No observation.state / action: UMI has no robot.
    """
    from glam_lerobot.ingest import umi as reader

    _run(
        lambda: reader.plan(
            inputs,
            fps=fps,
            source_fps=source_fps,
            camera_map=camera_map,
            image_size=_size(image_size),
            task=task,
            check_all_frames=check_all_frames,
        ),
        root,
        repo_id,
        "local/umi",
        workers,
        skip_bad,
        overwrite,
        cluster.executor_from(executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address),
    )


umi.__doc__ += "\n    " + _COMMON


def rosbag(
    inputs: list[Path] = typer.Argument(
        ...,
        help="bags: ROS 1 .bag files, ROS 2 bag folders, .mcap or .db3 files, "
        "or folders holding them; one bag = one episode",
    ),
    root: Path = ROOT,
    repo_id: str = REPO,
    mapping: Path = typer.Option(
        None,
        help="topic mapping YAML \\[default: the packaged kinova_kortex.yaml: "
        "/joint_states (joint_1..7 + robotiq_85_left_knuckle_joint), /camera/color/image_raw "
        "-> front]",
    ),
    fps: int = FPS,
    sync: str = typer.Option(
        None,
        help="nearest (closest sample, default) or previous (latest sample at or before "
        "each grid time); overrides the mapping's `sync`",
    ),
    max_gap: float = typer.Option(
        None,
        help="seconds a topic may go silent (or its clock jump) before the bag is "
        "refused (--skip-bad drops it) \\[default: 5 of the topic's own median periods]",
    ),
    split_at_gaps: bool = typer.Option(
        False,
        "--split-at-gaps",
        help="cut a bag where a topic went silent for longer than --max-gap and write each piece as its own "
        "episode, instead of refusing the bag (a clock jump is still refused)",
    ),
    image_size: str = SIZE,
    task: str = typer.Option("Kinova teleoperation", help="task string of every episode"),
    workers: str = WORKERS,
    skip_bad: bool = SKIP,
    overwrite: bool = OVERWRITE,
    executor: str = cluster.EXECUTOR,
    tasks: int = cluster.TASKS,
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """Kinova teleop bags (ROS 1, ROS 2 mcap or sqlite3, read with rosbags: no ROS install) -> a target-robot dataset.

    Reads the mapping's joint-state, gripper, optional command / ee-pose topics and one or two camera topics
    (sensor_msgs/Image or CompressedImage), using header stamps. Every stream is put on the FPS grid over the span
    all topics cover. Writes observation.state (7 joints + gripper opening in metres), action (the command topic's
    joint targets if mapped, else the NEXT synchronised joint state; gripper command = closedness of the next frame,
    0 open .. 1 closed), observation.ee_pose (ee-pose topic, else Gen3 forward kinematics + the mapping's
    tcp_offset) and the cameras (video).
    """
    from glam_lerobot.ingest import rosbag as reader

    _run(
        lambda: reader.plan(
            inputs,
            mapping=mapping,
            fps=fps,
            image_size=_size(image_size),
            task=task,
            sync=sync,
            max_gap=max_gap,
            split_at_gaps=split_at_gaps,
        ),
        root,
        repo_id,
        "local/kinova-teleop",
        workers,
        skip_bad,
        overwrite,
        cluster.executor_from(executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address),
    )


rosbag.__doc__ += "\n    " + _COMMON


def hdf5(
    inputs: list[Path] = typer.Argument(..., help="HDF5 files (or folders of *.hdf5 / *.h5)"),
    root: Path = ROOT,
    repo_id: str = REPO,
    layout: str = typer.Option("auto", help="auto | aloha | robomimic"),
    fps: int = FPS,
    source_fps: float = typer.Option(None, help="recording rate \\[default: aloha 50, robomimic 20]"),
    camera_map: str = typer.Option(
        None,
        help="file camera -> dataset camera (overhead | front) \\[default: aloha "
        "cam_high=overhead,cam_low=front; robomimic agentview=front]",
    ),
    image_size: str = SIZE,
    task: str = typer.Option(None, help="task string \\[default: robomimic env_name, else 'demonstration']"),
    robot: str = typer.Option(
        "auto",
        help="robomimic: write state/action (yes), not (no), or when every arm has "
        "robot{i}_joint_pos with 7 joints (auto)",
    ),
    tcp_offset: float = typer.Option(
        0.145,
        help="ALOHA: metres from the Gen3 tool interface to the ee_pose point "
        "(0.145: the 2F-85 pinch point, as in the simulator)",
    ),
    workers: str = WORKERS,
    skip_bad: bool = SKIP,
    overwrite: bool = OVERWRITE,
    executor: str = cluster.EXECUTOR,
    tasks: int = cluster.TASKS,
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """ALOHA or robomimic (robosuite, MimicGen) HDF5 -> a LeRobot dataset.

    ALOHA (a file per episode): /observations/qpos -> observation.state, /action -> action, both as recorded and
    8 values per arm (Gen3: 7 joints + gripper); ee_pose from Gen3 forward kinematics; /observations/images/<cam>
    (raw or JPEG rows). robomimic (data/demo_k): robot{i}_eef_pos/quat + gripper_qpos -> observation.ee_pose;
    with robot{i}_joint_pos, state = joints + gripper opening and action = the NEXT joint state + the recorded
    gripper command mapped to 0 open .. 1 closed. robomimic's `actions` are OSC end-effector deltas, not joint
    targets, and are never written to `action`; demos without joint positions get no state/action columns.
    Resampled to FPS by the nearest recorded step.
    """
    from glam_lerobot.ingest import hdf5 as reader

    if robot not in ("auto", "yes", "no"):
        _fail("--robot must be auto, yes or no")
    _run(
        lambda: reader.plan(
            inputs,
            layout=layout,
            fps=fps,
            source_fps=source_fps,
            camera_map=camera_map,
            image_size=_size(image_size),
            task=task,
            robot=robot,
            tcp_offset=tcp_offset,
        ),
        root,
        repo_id,
        "local/hdf5",
        workers,
        skip_bad,
        overwrite,
        cluster.executor_from(executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address),
    )


hdf5.__doc__ += "\n    " + _COMMON
