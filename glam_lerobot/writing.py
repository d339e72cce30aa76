"""Write episodes into a LeRobot v3 dataset, in parallel shards, resumably, and all-or-nothing.

Every producer of data (simulator, UMI, bags, HDF5, relabelling) hands this module a list of small job
descriptions and a function that turns one job into one episode. The writer
  1. validates each episode against the features (names, shapes, dtypes, NaN/inf, equal lengths),
  2. writes contiguous runs of jobs as shards with LeRobot's own create / add_frame / save_episode / finalize
     (one shard for one process, or shards of at most 20 episodes for several), producing episode k+1 in a thread
     while LeRobot encodes episode k; a dataset with no video feature skips LeRobot's per-frame PNG staging
     (arrow_episodes.py: the same files, written straight to Arrow),
  3. merges several shards with LeRobot's aggregate_datasets into what one process would have written, writes
     meta/glam.json and the dataset card,
  4. and only then renames the result into `root`.
The shards run as datatrove tasks (glam_lerobot.executors: processes on this machine, a Slurm job array or Ray).
Work in progress lives in `<root>.partial/`, datatrove's completion markers in its `logs/` (beside it on Slurm):
the shards are fixed by a write's first run, so an interrupted write resumes from the tasks it finished, with any
worker count, and a failure never leaves something at `root` that looks like a finished dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import provenance

DEFAULT_FEATURE_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}
MIN_VIDEO_SIDE = 32  # SVT-AV1 dies with a floating-point exception on smaller frames
# Episodes per shard when several processes write: the unit of parallel work and of resumption. One process
# writes one shard: merging shards (LeRobot's aggregate_datasets) rewrites every row through pandas, which for
# `image` features (PNG in the parquet: masks, the merged mixture's cameras) cost more than writing them did
# (16 of 38 s for the default's merged mixture). An interrupted one-process write therefore starts again.
SHARD_SIZE = 20


# `--workers auto`: one writer process keeps about two cores busy by itself (episode k+1 is produced while LeRobot
# encodes episode k), and a spawned worker costs seconds of imports plus a shard to aggregate. Measured on 2 cores:
# 40 stack-two episodes took 48 s with 1 worker and 46 s with 2 (benchmarks/results/sim-speed). So auto gives one
# worker per two cores, and only where each has at least this many episodes to repay its start-up.
AUTO_EPISODES_PER_WORKER = 40


def parse_workers(value: int | str) -> int | str:
    """--workers N (>= 1) or 'auto'; a clear ValueError for anything else."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--workers takes a number of processes or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"--workers must be at least 1 (or 'auto'), got {n}")
    return n


def resolve_workers(workers: int | str, n_jobs: int, cores: int | None = None) -> int:
    """The number of writer processes for `n_jobs` episodes: N as given, or what 'auto' picks (see above)."""
    from glam_lerobot.runtime import usable_cores

    workers = parse_workers(workers)
    if workers != "auto":
        return workers
    cores = cores or usable_cores()
    return max(1, min(cores // 2, n_jobs // AUTO_EPISODES_PER_WORKER))


class SkipEpisode(Exception):
    """Raised by a producer for an episode that should be dropped and counted (e.g. the expert failed)."""


class EpisodeError(ValueError):
    """Bad input, named precisely enough to find: which file, which episode, which field."""

    def __init__(self, file: Any, episode: Any, field: str, message: str):
        self.file, self.episode, self.field, self.message = str(file), episode, field, message
        super().__init__(f"{file}: episode {episode}: field '{field}': {message}")

    def __reduce__(self):  # so that a worker process's error reaches the parent intact (not a broken pool)
        return type(self), (self.file, self.episode, self.field, self.message)


@dataclass
class WriteSummary:
    root: Path
    episodes: int
    frames: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    resumed_shards: int = 0
    already_complete: bool = False  # the same write had finished before: nothing was done
    warnings: list[str] = field(default_factory=list)  # what producers flagged in episodes that were written
    notes: list[str] = field(default_factory=list)  # what the reader says about the input as a whole
    tasks: int = 1  # shards the write was cut into
    submitted: list[str] = field(default_factory=list)  # Slurm job ids (shards, merge): queued, not yet written
    logs: Path | None = None  # datatrove's logging folder of a queued write

    def lines(self) -> list[str]:
        if self.submitted:
            shards, merge = self.submitted
            return [
                f"queued {self.tasks} shard task(s) as Slurm job {shards} and the merge as job {merge} (after it)",
                f"the dataset appears at {self.root} when job {merge} has finished; logs, completions and stats "
                f"are in {self.logs}; rerun the same command to resume tasks that failed",
            ]
        if self.already_complete:
            return [
                f"{self.root} is already complete ({self.episodes} episodes, {self.frames} frames, same input and "
                "settings): nothing to do"
            ]
        out = [f"wrote {self.episodes} episodes, {self.frames} frames to {self.root} in {self.seconds:.1f} s"]
        if self.resumed_shards:
            out.append(f"reused {self.resumed_shards} shard(s) finished by an earlier, interrupted run")
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} episode(s):")
            out += [f"  {job}: {reason}" for job, reason in self.skipped]
        if self.warnings:
            out.append(f"{len(self.warnings)} warning(s):")
            out += [f"  {w}" for w in self.warnings]
        if self.bad:
            out.append(f"dropped {len(self.bad)} bad episode(s) (--skip-bad):")
            out += [f"  {msg}" for msg in self.bad]
        out += [f"note: {n}" for n in self.notes]
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
    progress: Path | None = None,
    cancelled: Path | None = None,
) -> dict:
    """Write one shard (in this process or a worker process). Returns what the shard's result file records.

    `progress` gets "<pid> <episodes done>" after each episode; the write stops when `cancelled` exists."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import writer_speedups

    writer_speedups.install()  # LeRobot's stats and image embedding cost more than the writing: writer_speedups.py
    use_videos = any(ft["dtype"] == "video" for ft in features.values())
    if use_videos:
        # Streaming encoding feeds frames to the video encoder as they arrive (threads, no PNG staging and no
        # forked encoder processes, which crash once torch has started its thread pools).
        ds = LeRobotDataset.create(
            repo_id,
            fps,
            features,
            root=shard_dir,
            robot_type=robot_type,
            use_videos=True,
            video_backend="pyav",
            streaming_encoding=True,
            # LeRobot drops a frame (with only a warning) when the encoder queue stays full for 0.1 s, as it does on
            # a busy CPU; offline writing must never lose frames, so the queue is unbounded (0): at most an episode.
            encoder_queue_maxsize=0,
        )

        def save(data: dict[str, np.ndarray], task: str) -> None:
            for t in range(len(next(iter(data.values())))):
                ds.add_frame({**{k: v[t] for k, v in data.items()}, "task": task})
            ds.save_episode()
    else:  # no video to encode: the same files without LeRobot's per-frame PNG staging (arrow_episodes.py)
        from glam_lerobot.arrow_episodes import ArrowEpisodeWriter

        ds = ArrowEpisodeWriter(shard_dir, repo_id, fps, features, robot_type)
        save = ds.save_episode
    skipped, bad, warnings, frames, episodes, written = [], [], [], 0, 0, []

    # Episode k+1 is produced (decoded, simulated, rendered) in a thread while LeRobot encodes and saves episode
    # k: decoders, MuJoCo and the encoder threads release the GIL, so the two overlap on two cores. One thread,
    # always the same, so thread-bound state (a producer's GL context) stays where it was made.
    def report(done: int) -> None:
        if progress is not None:
            progress.write_text(f"{os.getpid()} {done}")

    report(0)
    prefetch = ThreadPoolExecutor(1, thread_name_prefix="produce")
    ahead = prefetch.submit(produce, jobs[0][1]) if jobs else None
    try:
        for k, (index, job) in enumerate(jobs):
            file, episode_id = describe(job, index)
            current = ahead
            ahead = prefetch.submit(produce, jobs[k + 1][1]) if k + 1 < len(jobs) else None
            try:
                produced = current.result()
                parts = produced if isinstance(produced, list) else [produced]  # a bag cut at its gaps: several
                checked = [validate_episode(part, features, file, episode_id) for part in parts]
            except SkipEpisode as exc:
                skipped.append((f"{file} episode {episode_id}", str(exc)))
            except EpisodeError as exc:
                if not skip_bad:
                    raise
                bad.append(str(exc))
            else:
                for part, data in zip(parts, checked, strict=True):
                    length = len(next(iter(data.values())))
                    save(data, part["task"])
                    episodes, frames = episodes + 1, frames + length
                    written.append(index)
                    warnings += [f"{file} episode {episode_id}: {w}" for w in part.get("warnings", [])]
            report(k + 1)
            if cancelled is not None and cancelled.exists():
                raise RuntimeError(f"stopped after {k + 1} episodes of {shard_dir.name}: the write was cancelled")
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)  # an episode produced ahead of a failure is dropped
        ds.finalize()
    shutil.rmtree(shard_dir / "images", ignore_errors=True)  # LeRobot's PNG staging folder, empty by now
    return {
        "episodes": episodes,
        "frames": frames,
        "skipped": skipped,
        "bad": bad,
        "warnings": warnings,
        "written": written,
    }


def _plan_hash(
    repo_id: str, fps: int, features: dict, jobs: list, robot_type: str | None, inputs: list | None = None
) -> str:
    """What a write's result depends on: its settings, its jobs and the checksums of its input files (a file
    rewritten at the same path gives another plan; the command line, e.g. --workers, does not)."""
    plan = {
        "repo_id": repo_id,
        "fps": fps,
        "features": features,
        "jobs": jobs,
        "robot_type": robot_type,
        "inputs": inputs or [],
    }
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _inputs(glam_meta: dict | None) -> list:
    """The input files' records (path, bytes, sha256) from meta/glam.json's source, as readers record them."""
    return list(((glam_meta or {}).get("source") or {}).get("files") or [])


def _what_changed(old: dict, new: list) -> str:
    """A sentence naming the input files whose checksum differs between a finished write and this one."""
    before = {f["path"]: f.get("sha256") for f in _inputs(old)}
    after = {f["path"]: f.get("sha256") for f in new}
    changed = [p for p in after if p in before and before[p] != after[p]]
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    parts = [f"{p} changed (sha256 {before[p][:12]} -> {after[p][:12]})" for p in changed]
    parts += [f"{p} is new" for p in added] + [f"{p} is no longer an input" for p in removed]
    return "; ".join(parts) if parts else "the settings (features, episodes or options) differ"


def write_dataset(
    root: Path | str,
    repo_id: str,
    fps: int,
    features: dict[str, dict],
    jobs: list,
    produce: Callable[[Any], dict],
    workers: int | str = 1,
    skip_bad: bool = False,
    glam_meta: dict | None = None,
    robot_type: str | None = None,
    desc: str = "episodes",
    shard_size: int | None = None,
    overwrite: bool = False,
    executor: Any = None,
    job_meta: dict[str, list] | None = None,
) -> WriteSummary:
    """Write one episode per job into a new LeRobot dataset at `root` (see the module docstring). `executor`
    (glam_lerobot.executors.Executor) says where the shards run: this machine by default, or Slurm or Ray.
    `job_meta` holds per-job values ({key: one value per job}); meta/glam.json gets each key with the values of
    the episodes written, in their order.

    A finished dataset at `root` is reused only when it was written from the same plan (settings, jobs, input
    checksums); otherwise the write is refused, naming what changed, unless `overwrite`: then the new dataset
    is written beside it and replaces it only once finished."""
    from rich.progress import Progress

    from glam_lerobot import executors

    executor = executor or executors.LOCAL
    start = time.time()
    root = Path(root)
    if not jobs:
        raise ValueError("nothing to write: no episodes were given")
    workers = resolve_workers(workers, len(jobs))
    for key, ft in features.items():
        if ft["dtype"] == "video" and min(ft["shape"][:2]) < MIN_VIDEO_SIDE:
            raise ValueError(
                f"{key}: {ft['shape'][:2]} frames are too small for the AV1 encoder (min {MIN_VIDEO_SIDE} px)"
            )
    inputs = _inputs(glam_meta)
    plan_hash = _plan_hash(repo_id, fps, features, jobs, robot_type, inputs)
    replace_root = False
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()  # an empty folder (made by the user, or by a tool beforehand) holds nothing to protect
    if root.exists():
        old_meta = provenance.read(root)
        done = old_meta.get("write", {})
        if done.get("plan") == plan_hash:  # the same write already finished: nothing to do
            return WriteSummary(
                root,
                done["episodes"],
                done["frames"],
                [tuple(s) for s in done["skipped"]],
                done["bad"],
                0.0,
                already_complete=True,
            )
        if not overwrite:
            what = _what_changed(old_meta, inputs) if done else "it is not a dataset written by this command"
            raise FileExistsError(
                f"{root} already exists and was written from other input: {what}. Pass "
                "--overwrite to replace it (it stays in place until the new one is finished), "
                "or choose another output folder"
            )
        replace_root = True
    work = root.with_name(root.name + ".partial")
    plan_file = work / "plan.json"
    logs = executors.logging_dir(executor, work, root.with_name(root.name + ".slurm"))  # before anything is touched
    old_tasks = None
    if work.exists():
        old_plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
        old_tasks = old_plan.get("tasks") if old_plan.get("plan") == plan_hash else None
        if old_plan.get("plan") != plan_hash:
            if not overwrite:
                raise FileExistsError(
                    f"{work} holds an unfinished write from other input or settings "
                    f"({_what_changed(old_plan, inputs)}); resuming would mix the two. Pass --overwrite to "
                    "discard it and start again, or rerun the interrupted command to finish it"
                )
            shutil.rmtree(work)
    if not work.exists():
        shutil.rmtree(logs, ignore_errors=True)  # markers of an earlier, finished or discarded write
    work.mkdir(parents=True, exist_ok=True)

    # The plan's shards are fixed by its first run: a resumed write keeps them (and the tasks datatrove marked
    # finished), whatever --workers the rerun has, so it holds every job exactly once, in job order.
    tasks = old_tasks or executors.task_count(executor, len(jobs), workers, shard_size, SHARD_SIZE)
    if executor.tasks and old_tasks and executor.tasks != old_tasks:
        raise FileExistsError(
            f"{work} holds an unfinished write planned as {old_tasks} tasks, not {executor.tasks}: rerun with "
            f"--tasks {old_tasks} to finish it, or pass --overwrite to start again"
        )
    plan_file.write_text(
        json.dumps(
            {
                "plan": plan_hash,
                "repo_id": repo_id,
                "episodes": len(jobs),
                "tasks": tasks,
                "source": {"files": inputs},
            }
        )
    )
    write = _Write(
        root=root,
        work=work,
        repo_id=repo_id,
        fps=fps,
        features=features,
        robot_type=robot_type,
        jobs=list(jobs),
        produce=produce,
        skip_bad=skip_bad,
        bounds=executors.shard_bounds(len(jobs), tasks),
        plan_hash=plan_hash,
        glam_meta=glam_meta,
        replace_root=replace_root,
        quiet=executor.kind == "local",
        job_meta=job_meta or {},
    )
    resumed = executors.completed(logs)
    for rank in set(range(tasks)) - resumed:  # what an interrupted task left: redone whole
        write.progress_file(rank).unlink(missing_ok=True)
    (work / CANCELLED).unlink(missing_ok=True)
    if not executor.waits:  # Slurm: queue the shards and the merge, and say where the result will appear
        ids = executors.run(executor, write.shard, tasks, workers, logs, finish=write.merge, job_name=desc)
        return WriteSummary(root, 0, 0, resumed_shards=len(resumed), submitted=ids, tasks=tasks, logs=logs)

    with Progress(transient=False) as progress:
        bar = progress.add_task(desc, total=len(jobs), completed=write.done())
        failure: list[BaseException] = []

        def shards() -> None:
            try:
                executors.run(executor, write.shard, tasks, workers, logs, job_name=desc)
            except BaseException as exc:  # re-raised below, in the caller's thread
                failure.append(exc)

        runner = threading.Thread(target=shards, name="datatrove", daemon=True)
        runner.start()
        while runner.is_alive():
            runner.join(0.5)
            progress.update(bar, completed=write.done())
            if executor.kind == "local" and not failure:
                write.stop_if_a_worker_died(runner, logs)
        if failure:
            raise failure[0]
    summary = write.merge()
    summary.resumed_shards, summary.seconds, summary.tasks = len(resumed), time.time() - start, tasks
    return summary


CANCELLED = "cancelled"  # a file in the work folder: every task still running stops at its next episode


@dataclass
class _Write:
    """One write's plan: what every shard task and the merge need (pickled to worker processes and nodes)."""

    root: Path
    work: Path
    repo_id: str
    fps: int
    features: dict
    robot_type: str | None
    jobs: list
    produce: Callable[[Any], dict]
    skip_bad: bool
    bounds: list[int]
    plan_hash: str
    glam_meta: dict | None
    replace_root: bool
    quiet: bool = True
    job_meta: dict[str, list] = field(default_factory=dict)

    def shard_dir(self, rank: int) -> Path:
        return self.work / f"shard-{rank:05d}"

    def progress_file(self, rank: int) -> Path:
        return self.work / f"shard-{rank:05d}.progress"  # "<pid> <episodes done>", rewritten after each episode

    def shard(self, rank: int) -> None:
        """Task `rank`: write jobs [bounds[rank], bounds[rank + 1]) as one LeRobot dataset."""
        if self.quiet:
            from loguru import logger

            logger.disable("datatrove")  # a failure is reported by the caller, not as a worker's traceback
        progress = self.progress_file(rank)
        progress.write_text(f"{os.getpid()} 0")  # first of all: a worker killed from here on is noticed
        out = self.shard_dir(rank)
        shutil.rmtree(out, ignore_errors=True)
        a, b = self.bounds[rank], self.bounds[rank + 1]
        try:
            result = _write_shard(
                out,
                self.repo_id,
                self.fps,
                self.features,
                self.robot_type,
                list(enumerate(self.jobs))[a:b],
                self.produce,
                self.skip_bad,
                progress=progress,
                cancelled=self.work / CANCELLED,
            )
        except BaseException:
            progress.write_text(progress.read_text() + " stopped")  # failed or cancelled: no longer running
            raise
        (self.work / f"shard-{rank:05d}.json").write_text(json.dumps(result))

    def done(self) -> int:
        """Episodes written so far, finished tasks included (for the progress bar)."""
        return sum(p[1] for p in map(self.read_progress, range(len(self.bounds) - 1)) if p)

    def read_progress(self, rank: int) -> tuple[int, int, bool] | None:
        """(pid of the process writing shard `rank`, episodes done, whether it stopped on an error), or None
        before it has started."""
        try:
            pid, done, *stopped = self.progress_file(rank).read_text().split()
            return int(pid), int(done), bool(stopped)
        except (OSError, ValueError):  # not started, or caught mid-write
            return None

    def stop_if_a_worker_died(self, runner: threading.Thread, logs: Path) -> None:
        """A local worker killed (out of memory, kill -9) would leave datatrove's pool waiting forever for its
        task: stop the other tasks at their next episode and say how to resume."""
        from glam_lerobot import executors

        finished = executors.completed(logs)
        for rank in range(len(self.bounds) - 1):
            started = self.read_progress(rank)
            if started is None or started[2] or rank in finished or executors.alive(pid := started[0]):
                continue
            time.sleep(1.0)  # a task that has just finished is marked a moment after its worker moves on
            if rank in executors.completed(logs):
                continue
            (self.work / CANCELLED).touch()
            deadline = time.time() + 60
            while runner.is_alive() and self._running(logs, besides=rank) and time.time() < deadline:
                runner.join(0.2)  # the others stop at their next episode boundary
            raise RuntimeError(
                f"the worker process writing shard {rank} (pid {pid}) died (killed, or out of memory?); the "
                f"finished shards are kept in {self.work}: rerun the same command to resume"
            )

    def _running(self, logs: Path, besides: int) -> bool:
        from glam_lerobot import executors

        finished = executors.completed(logs)
        for rank in range(len(self.bounds) - 1):
            p = self.read_progress(rank)
            if rank != besides and rank not in finished and p and not p[2] and executors.alive(p[0]):
                return True
        return False

    def merge(self, _rank: int = 0) -> WriteSummary:
        """After every task: merge the shards, write provenance and card, check, and only then rename into root."""
        tasks = range(len(self.bounds) - 1)
        results = [json.loads((self.work / f"shard-{r:05d}.json").read_text()) for r in tasks]
        summary = WriteSummary(
            root=self.root,
            episodes=sum(r["episodes"] for r in results),
            frames=sum(r["frames"] for r in results),
            skipped=[tuple(s) for r in results for s in r["skipped"]],
            bad=[b for r in results for b in r["bad"]],
            warnings=[w for r in results for w in r.get("warnings", [])],
        )
        if summary.episodes == 0:
            reasons = "; ".join(r for _, r in summary.skipped[:3]) or "; ".join(summary.bad[:3])
            raise RuntimeError(f"no episode could be written ({reasons}); {self.work} kept for inspection")
        final = self.work / "dataset"
        if final.exists():
            shutil.rmtree(final)
        filled = [self.shard_dir(r) for r, result in zip(tasks, results, strict=True) if result["episodes"] > 0]
        if len(filled) == 1:
            shutil.copytree(filled[0], final)
        else:
            merge_datasets([self.repo_id] * len(filled), self.repo_id, filled, final)
        meta = dict(self.glam_meta or {})
        meta.setdefault("repo_id", self.repo_id)
        written = [i for r in results for i in r["written"]]  # the job of each episode, in episode order
        meta.update({key: [values[i] for i in written] for key, values in self.job_meta.items()})
        meta["write"] = {
            "plan": self.plan_hash,
            "episodes": summary.episodes,
            "frames": summary.frames,
            "skipped": summary.skipped,
            "bad": summary.bad,
            "warnings": summary.warnings,
        }
        provenance.write(final, meta)
        write_card(final)
        from glam_lerobot.validate import require_valid

        require_valid(final, f"the dataset written from {self.work}")  # a FAIL keeps the shards for a look
        if self.replace_root:  # the old dataset goes only now that the new one is complete
            self.root.rename(self.work / "replaced")
        final.rename(self.root)
        shutil.rmtree(self.work)
        return summary


def merge_datasets(repo_ids: list[str], repo_id: str, roots: list[Path], out: Path) -> None:
    """LeRobot's aggregate_datasets, then the layout one process writing every episode would have given."""
    from lerobot.datasets.aggregate import aggregate_datasets

    aggregate_datasets(repo_ids, repo_id, roots=roots, aggr_root=out)
    restore_single_writer_layout(out)


def restore_single_writer_layout(root: Path) -> None:
    """Make a merge of shards what one process writing every episode would have written.

    LeRobot 0.6.1's aggregate_datasets rewrites the data through pandas, which loses the Arrow schema
    (fixed-size lists become lists, `datasets`' schema metadata becomes pandas'), re-numbers `index` /
    `episode_index` without updating their stats, and merges the shards' stats in another order. Here the data
    files are rewritten with LeRobot's own writer settings (the features' Arrow schema, snappy, one row group per
    episode) and stats.json is rebuilt from the per-episode stats in episode order, as the writer builds it: a
    resumed or parallel write then has the same data files, byte for byte, as an uninterrupted one-process write.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lerobot.datasets.compute_stats import aggregate_stats
    from lerobot.datasets.feature_utils import get_hf_features_from_features
    from lerobot.datasets.io_utils import write_stats

    from glam_lerobot.revisions import write_by_episode

    info = json.loads((root / "meta" / "info.json").read_text())
    features = {k: {**ft, "shape": tuple(ft["shape"])} for k, ft in info["features"].items()}
    schema = get_hf_features_from_features(features).arrow_schema
    for path in sorted((root / "data").glob("*/*.parquet")):
        table = pq.read_table(path).select(schema.names).cast(schema)
        write_by_episode(pa.Table.from_arrays(table.columns, schema=schema), path)  # the schema's metadata, not pandas'

    stats = None
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        table = pq.read_table(path)
        columns = [c for c in table.column_names if c.startswith("stats/")]
        rows = {c: table[c].to_pylist() for c in columns}
        for i in range(table.num_rows):
            episode_stats: dict[str, dict] = {}
            for c in columns:
                key, stat = c[len("stats/") :].rsplit("/", 1)
                episode_stats.setdefault(key, {})[stat] = np.asarray(rows[c][i])
            stats = aggregate_stats([stats, episode_stats]) if stats is not None else episode_stats
    write_stats(stats, root)


def write_card(root: Path) -> None:
    from glam_lerobot.cards import write_dataset_card

    write_dataset_card(root)
