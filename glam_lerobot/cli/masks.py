"""CLI for the masks stage: `glam-lerobot masks add` and `glam-lerobot masks score`. Parses, then calls
glam_lerobot.masks (heavy imports happen inside the commands so --help stays fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from glam_lerobot.cli import cluster
from glam_lerobot.cli.errors import fail as _fail

masks_app = typer.Typer(
    help="Object masks (GLAM-O): add one lossless mask column per camera as a new dataset revision, or score a "
    "segmentation model against simulator ground truth.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="ultralytics weights: a local path or a name ultralytics resolves (yolo11n-seg.pt, "
        "yoloe-11s-seg.pt, sam2_b.pt, sam3.pt, ...). A .yaml config builds an untrained model (plumbing tests only).",
    ),
]
PromptOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        help="YOLOE / SAM 3: text prompt, comma-separated class names (default: the object names). "
        "SAM / SAM 2: 'box:x1,y1,x2,y2' or 'point:x,y' in pixels of each episode's first frame.",
    ),
]
ObjectsOpt = Annotated[
    str | None,
    typer.Option(
        "--objects",
        help="comma-separated objects to mask, e.g. cube,bowl (a name twice = two instances). Default: "
        "the task's manipulated object(s) from meta/glam.json (lift/pick_place cube, knock_down bottle, "
        "stack_two/stack_three all cubes).",
    ),
]
CamerasOpt = Annotated[str | None, typer.Option("--cameras", help="comma-separated cameras (default: all)")]
BatchOpt = Annotated[int, typer.Option("--batch", help="frames per inference call")]
ConfOpt = Annotated[float, typer.Option("--conf", help="detection confidence threshold")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="torch device (default: cuda:0 when present, else cpu)")
]
ImgszOpt = Annotated[int | None, typer.Option("--imgsz", help="inference size (default: the dataset's resolution)")]
TrackerOpt = Annotated[
    str,
    typer.Option(
        "--tracker",
        help="ultralytics tracker config for YOLO models (bytetrack.yaml, botsort.yaml), or 'none' to "
        "associate detections by mask IoU only",
    ),
]


def _command_line(name: str, args: dict) -> str:
    """The command as the user could type it again, for provenance (built from the parsed options, not argv)."""
    parts = [f"glam-lerobot {name}"]
    for key, value in args.items():
        if value is not None:
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def _list(text: str | None) -> list[str] | None:
    from glam_lerobot.masks.objects import parse_list

    return parse_list(text)


def add(
    root: Annotated[Path, typer.Option("--root", help="the parent dataset (a local LeRobot dataset root)")],
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="ultralytics (camera frames) or groundtruth (MuJoCo "
            "re-render from sim.qpos, datasets from `sim record`)",
        ),
    ],
    model: ModelOpt = None,
    prompt: PromptOpt = None,
    objects: ObjectsOpt = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="name of the new revision (default masks-<backend>)")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="root of the new revision (default <root>@<revision> beside the parent)"),
    ] = None,
    cameras: CamerasOpt = None,
    batch: BatchOpt = 16,
    conf: ConfOpt = 0.25,
    device: DeviceOpt = None,
    imgsz: ImgszOpt = None,
    tracker: TrackerOpt = "bytetrack.yaml",
    executor: str = cluster.EXECUTOR,
    tasks: int = typer.Option(
        None,
        help="tasks, each masking a share of the episodes with its own model \\[default: this process; on a "
        "cluster one task per 20 episodes]",
        rich_help_panel=cluster.PANEL,
    ),
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """Add object-mask columns (mask.<camera>, lossless HxWx3 images in {0,255}) to a dataset as a NEW revision.

    Reads ROOT (frames, or sim.qpos for ground truth); writes a new dataset root with the mask columns, their
    stats, provenance in meta/glam.json (backend, model, prompt, objects, empty-frame counts) and a card. The
    parent is not modified. Per-episode results are cached in <output>.masks-work/ so an interrupted run resumes.
    """
    where = cluster.executor_from(
        executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address
    )
    settings = {k: v for k, v in locals().items() if k not in cluster.OPTION_NAMES and k != "where"}
    command = _command_line("masks add", settings)  # what the masks depend on, not where they were computed
    from rich.console import Console

    from glam_lerobot.masks.add import add_masks

    try:
        summary = add_masks(
            root,
            backend,
            model=model,
            prompt=prompt,
            objects=_list(objects),
            revision=revision,
            output=output,
            cameras=_list(cameras),
            batch=batch,
            conf=conf,
            device=device,
            imgsz=imgsz,
            tracker=None if tracker == "none" else tracker,
            command=command,
            executor=where,
        )
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    console = Console()
    for line in summary.lines():
        console.print(line)


def score(
    root: Annotated[
        list[Path],
        typer.Option(
            "--root", help="dataset(s) with ground truth (mask columns or sim.qpos); repeat for several tasks"
        ),
    ],
    model: Annotated[str, typer.Option("--model", help="ultralytics weights to score (path or name)")],
    prompt: PromptOpt = None,
    objects: ObjectsOpt = None,
    gt_objects: Annotated[
        str | None,
        typer.Option("--gt-objects", help="simulator objects for the re-rendered truth (default: the task's)"),
    ] = None,
    cameras: CamerasOpt = None,
    episodes: Annotated[
        int | None, typer.Option("--episodes", help="score the first N episodes of each dataset (default all)")
    ] = None,
    panel: Annotated[Path, typer.Option("--panel", help="PNG panel of frames, predicted and true masks")] = Path(
        "mask_scores.png"
    ),
    batch: BatchOpt = 16,
    conf: ConfOpt = 0.25,
    device: DeviceOpt = None,
    imgsz: ImgszOpt = None,
    tracker: TrackerOpt = "bytetrack.yaml",
) -> None:
    """Mask IoU of a segmentation model against ground truth, per task and camera.

    Reads each ROOT (frames and ground truth); writes the PNG panel and, beside it, the scores as JSON.
    """
    from rich.console import Console
    from rich.table import Table

    from glam_lerobot.masks.score import score_masks

    try:
        rows = score_masks(
            root,
            model,
            prompt=prompt,
            objects=_list(objects),
            gt_objects=_list(gt_objects),
            cameras=_list(cameras),
            max_episodes=episodes,
            panel=panel,
            batch=batch,
            conf=conf,
            device=device,
            imgsz=imgsz,
            tracker=None if tracker == "none" else tracker,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    table = Table(title=f"mask IoU of {model}")
    for col in ("task", "camera", "frames", "mean IoU", "pred empty", "true empty", "truth"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["task"]),
            r["camera"],
            str(r["frames"]),
            f"{r['mean_iou']:.3f}",
            str(r["pred_empty"]),
            str(r["true_empty"]),
            r["truth"],
        )
    console = Console()
    console.print(table)
    scores = panel.with_suffix(".json")
    scores.write_text(json.dumps(rows, indent=2))
    console.print(f"panel: {panel}\nscores: {scores}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    masks_app.command("add")(add)
    masks_app.command("score")(score)
    app.add_typer(masks_app, name="masks")
