"""`glam-lerobot masks add`: object masks of a dataset, written as a new revision of it.

For each episode and camera a backend produces (T, H, W) boolean masks; they are cached per episode in a work
folder beside the output (`<output>.masks-work/episode-000007.npz`, bit-packed), so an interrupted run resumes
where it stopped. When every episode is done, the masks become one lossless image column per camera
(schema.mask_key) in a new revision built by glam_lerobot.revisions.add_columns (the parent's videos copied byte
for byte, the parent untouched), with stats, provenance in meta/glam.json and a dataset card.
Frames where no object was found get an empty mask and are counted per camera, in the summary and in the
provenance.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import provenance, schema
from glam_lerobot.masks import columns, episodes
from glam_lerobot.masks.objects import objects_for

BACKENDS = ("ultralytics", "groundtruth")


@dataclass
class MaskSummary:
    root: Path  # the new revision
    revision: str
    episodes: int
    frames: int
    empty: dict[str, int]  # camera -> frames with an empty mask
    resumed: int  # episodes taken from the work folder of an interrupted run
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # Slurm job ids (masks, revision): queued, not done
    logs: Path | None = None

    def lines(self) -> list[str]:
        if self.submitted:
            return [
                f"queued the masks of {self.episodes} episodes as Slurm job {self.submitted[0]} and the revision as "
                f"job {self.submitted[1]} (after it); it appears at {self.root}; logs in {self.logs}"
            ]
        empty = ", ".join(f"{cam} {n}/{self.frames}" for cam, n in self.empty.items())
        return [
            f"wrote revision '{self.revision}' to {self.root}",
            f"{self.episodes} episodes, {self.frames} frames, columns {', '.join(schema.mask_key(c) for c in self.empty)}",
            f"frames with no object found (empty mask): {empty}",
            f"{self.seconds:.1f} s"
            + (f", {self.resumed} episodes resumed from an earlier run" if self.resumed else ""),
        ]


def work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".masks-work")


def make_masker(
    backend: str,
    ds,
    glam: dict,
    *,
    model: str | None,
    prompt: str | None,
    objects: list[str] | None,
    cameras: list[str],
    batch: int = 16,
    conf: float = 0.25,
    device: str | None = None,
    imgsz: int | None = None,
    tracker: str | None = "bytetrack.yaml",
):
    """The backend object and the provenance that describes it. Validates everything before any work starts."""
    task = glam.get("task")
    if backend == "groundtruth":
        from glam_lerobot.masks.groundtruth import GroundTruthMasker, require_sim_columns

        require_sim_columns(ds.meta.features, ds.root)
        if not task or not glam.get("embodiment"):
            raise ValueError(f"{ds.root}: meta/glam.json names no task/embodiment; was it recorded by `sim record`?")
        masker = GroundTruthMasker(task, glam["embodiment"], objects, episodes.image_size(ds, cameras[0]), cameras)
        return masker, {
            "backend": backend,
            "model": "mujoco segmentation",
            "objects": masker.objects,
            "task": task,
            "embodiment": glam["embodiment"],
        }
    if backend == "ultralytics":
        from glam_lerobot.masks.ultralytics_backend import UltralyticsMasker

        if not model:
            raise ValueError("--backend ultralytics needs --model (a weights file or a name ultralytics resolves)")
        targets = objects if (objects or prompt) else objects_for(task, None)
        masker = UltralyticsMasker(
            model, targets, prompt, imgsz=imgsz, batch=batch, conf=conf, device=device, tracker=tracker
        )
        return masker, {
            "backend": backend,
            "model": str(model),
            "model_kind": masker.kind,
            "prompt": prompt,
            "objects": masker.targets,
            "conf": conf,
            "tracker": tracker if masker.kind == "yolo" else None,
            "device": masker.device,
        }
    raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def mask_episode(masker, ds, ep: int, cameras: list[str]) -> dict[str, np.ndarray]:
    """{camera: (T, H, W) bool} for one episode, from whichever backend."""
    from glam_lerobot.masks.groundtruth import GroundTruthMasker

    if isinstance(masker, GroundTruthMasker):  # rendered from the stored states, all cameras in one pass
        return masker.mask_episode(episodes.column(ds, ep, schema.SIM_QPOS))
    return {cam: masker.mask_episode(episodes.camera_frames(ds, ep, cam)) for cam in cameras}


def add_masks(
    root: Path | str,
    backend: str,
    *,
    model: str | None = None,
    prompt: str | None = None,
    objects: list[str] | None = None,
    revision: str | None = None,
    output: Path | str | None = None,
    cameras: list[str] | None = None,
    batch: int = 16,
    conf: float = 0.25,
    device: str | None = None,
    imgsz: int | None = None,
    tracker: str | None = "bytetrack.yaml",
    command: str = "glam-lerobot masks add",
    max_episodes: int | None = None,
    executor=None,
) -> MaskSummary:
    """Mask every episode of the dataset at `root` and write the result as revision `revision` (see module doc).

    `max_episodes` stops the run (KeyboardInterrupt) after that many newly masked episodes, as an interruption
    would: the work folder keeps them and the next call resumes. `executor` (glam_lerobot.executors.Executor)
    masks the episodes as datatrove tasks, each with its own model, then writes the revision after them (a
    dependent job on Slurm, where the returned summary only says what was queued).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from glam_lerobot.revisions import default_root

    start = time.time()
    root = Path(root)
    ds = episodes.open_dataset(root)
    glam = provenance.read(root)
    all_cams = episodes.cameras_of(ds)
    cameras = list(cameras) if cameras else all_cams
    unknown = [c for c in cameras if c not in all_cams]
    if unknown:
        raise ValueError(f"{root}: no camera {unknown} (cameras: {', '.join(all_cams)})")
    existing = [schema.mask_key(c) for c in cameras if schema.mask_key(c) in ds.meta.features]
    if existing:
        raise ValueError(
            f"{root}: already has mask columns {existing}; mask another --cameras, or a revision "
            "without them (LeRobot's remove_feature)"
        )
    revision = revision or f"masks-{backend}"
    output = Path(output) if output else default_root(root, revision)
    if output.exists():
        raise FileExistsError(f"{output} already exists; choose another --revision or --output, or remove it")
    masker, details = make_masker(
        backend,
        ds,
        glam,
        model=model,
        prompt=prompt,
        objects=objects,
        cameras=cameras,
        batch=batch,
        conf=conf,
        device=device,
        imgsz=imgsz,
        tracker=tracker,
    )

    # The work folder belongs to one plan: same parent, same backend settings. Anything else is refused.
    work = work_dir(output)
    # (the device is left out: masks from a run resumed on another device are the same masks)
    plan = {
        "parent": str(root.resolve()),
        "frames": ds.meta.total_frames,
        "cameras": cameras,
        **{k: v for k, v in details.items() if k != "device"},
    }
    plan_hash = hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]
    plan_file = work / "plan.json"
    if work.exists() and plan_file.exists() and json.loads(plan_file.read_text()).get("hash") != plan_hash:
        raise FileExistsError(f"{work} holds masks of a different run (other parent or settings); remove it first")
    work.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps({"hash": plan_hash, **plan}, indent=1, default=str))

    n_eps = ds.meta.total_episodes
    cache = [work / f"episode-{ep:06d}.npz" for ep in range(n_eps)]
    resumed = sum(p.exists() for p in cache)
    job = MaskJob(
        root=root,
        output=output,
        revision=revision,
        cameras=cameras,
        command=command,
        masker_options={
            "backend": backend,
            "model": model,
            "prompt": prompt,
            "objects": objects,
            "batch": batch,
            "conf": conf,
            "device": device,
            "imgsz": imgsz,
            "tracker": tracker,
        },
        details=details,
        resumed=resumed,
        start=start,
    )
    if executor is not None and (executor.kind != "local" or executor.tasks):
        return job.run_on(executor, n_eps)
    done_now = 0
    with Progress(
        TextColumn("masks"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"), TimeRemainingColumn()
    ) as progress:
        bar = progress.add_task("masks", total=n_eps, completed=resumed)
        for ep in range(n_eps):
            if cache[ep].exists():
                continue
            if max_episodes is not None and done_now >= max_episodes:
                raise KeyboardInterrupt(f"stopped after {done_now} episodes (max_episodes)")
            job.mask_and_cache(masker, ds, ep)
            done_now += 1
            progress.update(bar, advance=1)
    return job.finish()


MASK_EPISODES_PER_TASK = 20  # a cluster task's share when --tasks is not given


@dataclass
class MaskJob:
    """One `masks add` run: what its tasks (each a share of the episodes, with its own masker) and its final
    step (the new revision from every episode's cached masks) need; pickled to worker processes and nodes."""

    root: Path
    output: Path
    revision: str
    cameras: list[str]
    command: str
    masker_options: dict
    details: dict
    resumed: int
    start: float
    bounds: list[int] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return work_dir(self.output)

    def cache(self, ep: int) -> Path:
        return self.work / f"episode-{ep:06d}.npz"

    def mask_and_cache(self, masker, ds, ep: int) -> None:
        masks = mask_episode(masker, ds, ep, self.cameras)
        tmp = self.cache(ep).with_suffix(".tmp.npz")
        np.savez(tmp, **{cam: columns.pack(masks[cam]) for cam in self.cameras})
        tmp.replace(self.cache(ep))  # atomic: a cache file is complete or absent

    def run_on(self, executor, n_eps: int) -> MaskSummary | None:
        from glam_lerobot import executors

        tasks = executors.task_count(executor, n_eps, 1, None, MASK_EPISODES_PER_TASK)
        self.bounds = executors.shard_bounds(n_eps, tasks)
        logs = executors.logging_dir(executor, self.work, self.output.with_name(self.output.name + ".masks-slurm"))
        shutil.rmtree(logs, ignore_errors=True)  # the episode cache, not datatrove's markers, says what is done
        ids = executors.run(executor, self.task, tasks, tasks, logs, finish=self.finish, job_name="masks")
        if ids:
            return MaskSummary(self.output, self.revision, n_eps, 0, {}, self.resumed, 0.0, submitted=ids, logs=logs)
        return self.finish()

    def task(self, rank: int) -> None:
        """Task `rank`: one masker (one model load) for its episodes; the ones cached already are skipped."""
        options = dict(self.masker_options)
        ds = episodes.open_dataset(self.root)
        masker, _ = make_masker(options.pop("backend"), ds, provenance.read(self.root), cameras=self.cameras, **options)
        for ep in range(self.bounds[rank], self.bounds[rank + 1]):
            if not self.cache(ep).exists():
                self.mask_and_cache(masker, ds, ep)

    def finish(self, _rank: int = 0) -> MaskSummary:
        """Every episode is cached: assemble each column in global index order (add_features' order) and write the
        new revision."""
        from glam_lerobot.revisions import add_columns

        ds = episodes.open_dataset(self.root)
        cameras, n_eps = self.cameras, ds.meta.total_episodes
        new_columns, empty, per_episode_empty = {}, {}, {cam: [] for cam in cameras}
        for cam in cameras:
            h, w = episodes.image_size(ds, cam)
            masks = np.zeros((ds.meta.total_frames, h, w), bool)
            for ep in range(n_eps):
                with np.load(self.cache(ep)) as z:
                    m = columns.unpack(z[cam], w)
                lo, hi = episodes.episode_range(ds, ep)
                if m.shape != (hi - lo, h, w):
                    raise ValueError(
                        f"{self.cache(ep)}: camera {cam} holds {m.shape}, episode {ep} needs {(hi - lo, h, w)}"
                    )
                per_episode_empty[cam].append(int((~m.reshape(len(m), -1).any(1)).sum()))
                masks[lo:hi] = m
            empty[cam] = int(sum(per_episode_empty[cam]))
            key = schema.mask_key(cam)
            new_columns[key] = (columns.to_image(masks), schema.mask_features((h, w), (cam,))[key])
            del masks
        details = {
            **self.details,
            "cameras": cameras,
            "frames": ds.meta.total_frames,
            "empty_frames": empty,
            "empty_frames_per_episode": per_episode_empty,
        }
        new_root = add_columns(
            self.root,
            new_columns,
            revision=self.revision,
            command=self.command,
            details=details,
            output_root=self.output,
        )
        shutil.rmtree(self.work, ignore_errors=True)
        return MaskSummary(
            new_root, self.revision, n_eps, ds.meta.total_frames, empty, self.resumed, time.time() - self.start, details
        )
