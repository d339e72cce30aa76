"""Write episodes into a LeRobot v3 dataset, in parallel shards, resumably, and all-or-nothing.

Every producer of data (simulator, UMI, bags, HDF5, relabelling) hands this module a list of small job
descriptions and a function that turns one job into one episode. The writer
  1. validates each episode against the features (names, shapes, dtypes, NaN/inf, equal lengths),
  2. writes contiguous runs of jobs as shards with LeRobot's own create / add_frame / save_episode / finalize,
     in worker processes,
  3. merges the shards with LeRobot's aggregate_datasets, writes meta/glam.json and the dataset card,
  4. and only then renames the result into `root`.
Work in progress lives in `<root>.partial/`; a finished shard is marked by `shard-NNNN.done.json`, so an
interrupted write resumes from the shards it finished, and a failure never leaves something at `root` that looks
like a finished dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import provenance

DEFAULT_FEATURE_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}
MIN_VIDEO_SIDE = 32  # SVT-AV1 dies with a floating-point exception on smaller frames
SHARD_SIZE = 20  # episodes per shard: the unit of resumption and of parallel work


class SkipEpisode(Exception):
    """Raised by a producer for an episode that should be dropped and counted (e.g. the expert failed)."""


class EpisodeError(ValueError):
    """Bad input, named precisely enough to find: which file, which episode, which field."""

    def __init__(self, file: Any, episode: Any, field: str, message: str):
        self.file, self.episode, self.field = str(file), episode, field
        super().__init__(f"{file}: episode {episode}: field '{field}': {message}")


@dataclass
class WriteSummary:
    root: Path
    episodes: int
    frames: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    resumed_shards: int = 0

    def lines(self) -> list[str]:
        out = [f"wrote {self.episodes} episodes, {self.frames} frames to {self.root} in {self.seconds:.1f} s"]
        if self.resumed_shards:
            out.append(f"reused {self.resumed_shards} shard(s) finished by an earlier, interrupted run")
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} episode(s):")
            out += [f"  {job}: {reason}" for job, reason in self.skipped]
        if self.bad:
            out.append(f"dropped {len(self.bad)} bad episode(s) (--skip-bad):")
            out += [f"  {msg}" for msg in self.bad]
        return out


def describe(job: Any, index: int) -> tuple[str, Any]:
    """(file, episode) for error messages, from the job's own fields where it has them."""
    if isinstance(job, dict):
        return str(job.get("file", job.get("source", "<job>"))), job.get("episode", index)
    return repr(job), index


def validate_episode(episode: dict, features: dict[str, dict], file: str, index: Any) -> dict[str, np.ndarray]:
    """Check an episode against the features; return its frames cast to the features' dtypes."""
    if not isinstance(episode, dict) or "frames" not in episode or "task" not in episode:
        raise EpisodeError(file, index, "<episode>", "a producer must return {'task': str, 'frames': {...}}")
    frames = episode["frames"]
    wanted = {k for k in features if k not in DEFAULT_FEATURE_KEYS}
    if missing := sorted(wanted - set(frames)):
        raise EpisodeError(file, index, missing[0], "missing (all missing: " + ", ".join(missing) + ")")
    if extra := sorted(set(frames) - wanted):
        raise EpisodeError(file, index, extra[0], "not a feature of this dataset")
    lengths = {k: len(v) for k, v in frames.items()}
    if len(set(lengths.values())) != 1:
        raise EpisodeError(file, index, max(lengths, key=lengths.get), f"lengths disagree: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise EpisodeError(file, index, next(iter(lengths)), "episode has no frames")
    out = {}
    for key, value in frames.items():
        ft = features[key]
        arr = np.asarray(value)
        if ft["dtype"] in ("video", "image"):
            if arr.dtype != np.uint8:
                raise EpisodeError(file, index, key, f"images must be uint8, got {arr.dtype}")
            if tuple(arr.shape[1:]) != tuple(ft["shape"]):
                raise EpisodeError(file, index, key, f"image size {arr.shape[1:]} != expected {tuple(ft['shape'])}")
        elif ft["dtype"] == "string":
            pass
        else:
            if tuple(arr.shape[1:]) != tuple(ft["shape"]):
                raise EpisodeError(file, index, key, f"shape {arr.shape[1:]} != expected {tuple(ft['shape'])}")
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                t = int(np.argmax(~np.isfinite(arr.reshape(len(arr), -1)).all(1)))
                raise EpisodeError(file, index, key, f"NaN or infinite value (first at frame {t})")
            arr = arr.astype(ft["dtype"], copy=False)
        out[key] = arr
    return out


def _write_shard(
    shard_dir: Path,
    repo_id: str,
    fps: int,
    features: dict,
    robot_type: str | None,
    jobs: list[tuple[int, Any]],
    produce: Callable[[Any], dict],
    skip_bad: bool,
    ticks: Any = None,
) -> dict:
    """Write one shard; runs in a worker process. Returns what the done-marker records."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    use_videos = any(ft["dtype"] == "video" for ft in features.values())
    # Streaming encoding feeds frames to the video encoder as they arrive (threads, no PNG staging and no
    # forked encoder processes, which crash once torch has started its thread pools).
    ds = LeRobotDataset.create(
        repo_id, fps, features, root=shard_dir, robot_type=robot_type, use_videos=use_videos, video_backend="pyav",
        streaming_encoding=use_videos,
        # LeRobot drops a frame (with only a warning) when the encoder queue stays full for 0.1 s, as it does on a
        # busy CPU; offline writing must never lose frames, so the queue is unbounded (0), holding at most an episode.
        encoder_queue_maxsize=0,
    )
    skipped, bad, frames, episodes = [], [], 0, 0
    try:
        for index, job in jobs:
            file, episode_id = describe(job, index)
            try:
                episode = produce(job)
                data = validate_episode(episode, features, file, episode_id)
            except SkipEpisode as exc:
                skipped.append((f"{file} episode {episode_id}", str(exc)))
            except EpisodeError as exc:
                if not skip_bad:
                    raise
                bad.append(str(exc))
            else:
                length = len(next(iter(data.values())))
                for t in range(length):
                    ds.add_frame({**{k: v[t] for k, v in data.items()}, "task": episode["task"]})
                ds.save_episode()
                episodes, frames = episodes + 1, frames + length
            if ticks is not None:
                ticks.put(1)
    finally:
        ds.finalize()
    shutil.rmtree(shard_dir / "images", ignore_errors=True)  # LeRobot's PNG staging folder, empty by now
    return {"episodes": episodes, "frames": frames, "skipped": skipped, "bad": bad}


def _plan_hash(repo_id: str, fps: int, features: dict, jobs: list, robot_type: str | None) -> str:
    plan = {"repo_id": repo_id, "fps": fps, "features": features, "jobs": jobs, "robot_type": robot_type}
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_dataset(
    root: Path | str,
    repo_id: str,
    fps: int,
    features: dict[str, dict],
    jobs: list,
    produce: Callable[[Any], dict],
    workers: int = 1,
    skip_bad: bool = False,
    glam_meta: dict | None = None,
    robot_type: str | None = None,
    desc: str = "episodes",
    shard_size: int = SHARD_SIZE,
) -> WriteSummary:
    """Write one episode per job into a new LeRobot dataset at `root` (see the module docstring)."""
    from rich.progress import Progress

    start = time.time()
    root = Path(root)
    if not jobs:
        raise ValueError("nothing to write: no episodes were given")
    for key, ft in features.items():
        if ft["dtype"] == "video" and min(ft["shape"][:2]) < MIN_VIDEO_SIDE:
            raise ValueError(f"{key}: {ft['shape'][:2]} frames are too small for the AV1 encoder (min {MIN_VIDEO_SIDE} px)")
    plan_hash = _plan_hash(repo_id, fps, features, jobs, robot_type)
    if root.exists():
        done = provenance.read(root).get("write", {})
        if done.get("plan") == plan_hash:  # the same write already finished: nothing to do
            return WriteSummary(root, done["episodes"], done["frames"], [tuple(s) for s in done["skipped"]],
                                done["bad"], 0.0)
        raise FileExistsError(
            f"{root} already exists and holds something else; choose another output folder or remove it"
        )
    work = root.with_name(root.name + ".partial")
    plan_file = work / "plan.json"
    if work.exists() and json.loads(plan_file.read_text()).get("plan") != plan_hash:
        raise FileExistsError(
            f"{work} holds an unfinished write of a different dataset; remove it or finish that write first"
        )
    work.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps({"plan": plan_hash, "repo_id": repo_id, "episodes": len(jobs)}))

    n_shards = max(min(workers, len(jobs)), math.ceil(len(jobs) / shard_size))
    bounds = np.linspace(0, len(jobs), n_shards + 1).astype(int)
    shards = [list(enumerate(jobs))[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    results: dict[int, dict] = {}
    for i in range(n_shards):
        marker = work / f"shard-{i:04d}.done.json"
        if marker.exists():
            results[i] = json.loads(marker.read_text())
        elif (work / f"shard-{i:04d}").exists():
            shutil.rmtree(work / f"shard-{i:04d}")  # an interrupted shard: redo it whole
    resumed = len(results)
    pending = [i for i in range(n_shards) if i not in results]

    def finish(i: int, result: dict) -> None:
        (work / f"shard-{i:04d}.done.json").write_text(json.dumps(result))
        results[i] = result

    with Progress(transient=False) as progress:
        bar = progress.add_task(desc, total=len(jobs), completed=sum(len(shards[i]) for i in results))
        if workers <= 1 or len(pending) <= 1:
            for i in pending:
                finish(i, _write_shard(work / f"shard-{i:04d}", repo_id, fps, features, robot_type, shards[i],
                                       produce, skip_bad))
                progress.update(bar, advance=len(shards[i]))
        else:
            ctx = mp.get_context("spawn")  # no fork: MuJoCo GL contexts and torch threads do not survive it
            with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                ticks = manager.Queue()
                futures = {
                    pool.submit(_write_shard, work / f"shard-{i:04d}", repo_id, fps, features, robot_type,
                                shards[i], produce, skip_bad, ticks): i
                    for i in pending
                }
                while futures:
                    finished, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                    while not ticks.empty():
                        progress.update(bar, advance=ticks.get())
                    for fut in finished:
                        finish(futures.pop(fut), fut.result())  # re-raises a worker's EpisodeError here

    summary = WriteSummary(
        root=root,
        episodes=sum(r["episodes"] for r in results.values()),
        frames=sum(r["frames"] for r in results.values()),
        skipped=[tuple(s) for i in sorted(results) for s in results[i]["skipped"]],
        bad=[b for i in sorted(results) for b in results[i]["bad"]],
        resumed_shards=resumed,
    )
    if summary.episodes == 0:
        reasons = "; ".join(r for _, r in summary.skipped[:3]) or "; ".join(summary.bad[:3])
        raise RuntimeError(f"no episode could be written ({reasons}); {work} kept for inspection")

    final = work / "dataset"
    if final.exists():
        shutil.rmtree(final)
    filled = [work / f"shard-{i:04d}" for i in sorted(results) if results[i]["episodes"] > 0]
    if len(filled) == 1:
        shutil.copytree(filled[0], final)
    else:
        from lerobot.datasets.aggregate import aggregate_datasets

        aggregate_datasets([repo_id] * len(filled), repo_id, roots=filled, aggr_root=final)
    summary.seconds = time.time() - start
    meta = dict(glam_meta or {})
    meta.setdefault("repo_id", repo_id)
    meta["write"] = {"plan": plan_hash, "episodes": summary.episodes, "frames": summary.frames,
                     "skipped": summary.skipped, "bad": summary.bad}
    provenance.write(final, meta)
    write_card(final)
    final.rename(root)
    shutil.rmtree(work)
    return summary


def write_card(root: Path) -> None:
    from glam_lerobot.cards import write_dataset_card

    write_dataset_card(root)
