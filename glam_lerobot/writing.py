"""Write episodes into a LeRobot v3 dataset, in parallel shards, resumably, and all-or-nothing.

Every producer of data (simulator, UMI, bags, HDF5, relabelling) hands this module a list of small job
descriptions and a function that turns one job into one episode. The writer
  1. validates each episode against the features (names, shapes, dtypes, NaN/inf, equal lengths),
  2. writes contiguous runs of jobs as shards with LeRobot's own create / add_frame / save_episode / finalize
     (one shard per process, or 20-episode shards across worker processes), producing episode k+1 in a thread
     while LeRobot encodes episode k,
  3. merges several shards with LeRobot's aggregate_datasets into what one process would have written, writes
     meta/glam.json and the dataset card,
  4. and only then renames the result into `root`.
Work in progress lives in `<root>.partial/`; a finished shard is marked by `shard-FIRST-END.done.json` (the job
range it holds), so an interrupted parallel write resumes from the shards it finished, with any worker count, and
a failure never leaves something at `root` that looks like a finished dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
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

    def lines(self) -> list[str]:
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
    ticks: Any = None,
) -> dict:
    """Write one shard (in this process or a worker process). Returns what the done-marker records."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import writer_speedups

    writer_speedups.install()  # LeRobot's stats and image embedding cost more than the writing: writer_speedups.py
    use_videos = any(ft["dtype"] == "video" for ft in features.values())
    # Streaming encoding feeds frames to the video encoder as they arrive (threads, no PNG staging and no
    # forked encoder processes, which crash once torch has started its thread pools).
    ds = LeRobotDataset.create(
        repo_id,
        fps,
        features,
        root=shard_dir,
        robot_type=robot_type,
        use_videos=use_videos,
        video_backend="pyav",
        streaming_encoding=use_videos,
        # LeRobot drops a frame (with only a warning) when the encoder queue stays full for 0.1 s, as it does on a
        # busy CPU; offline writing must never lose frames, so the queue is unbounded (0), holding at most an episode.
        encoder_queue_maxsize=0,
    )
    skipped, bad, warnings, frames, episodes = [], [], [], 0, 0
    # Episode k+1 is produced (decoded, simulated, rendered) in a thread while LeRobot encodes and saves episode
    # k: decoders, MuJoCo and the encoder threads release the GIL, so the two overlap on two cores. One thread,
    # always the same, so thread-bound state (a producer's GL context) stays where it was made.
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
                    for t in range(length):
                        ds.add_frame({**{k: v[t] for k, v in data.items()}, "task": part["task"]})
                    ds.save_episode()
                    episodes, frames = episodes + 1, frames + length
                    warnings += [f"{file} episode {episode_id}: {w}" for w in part.get("warnings", [])]
            if ticks is not None:
                ticks.put(1)
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)  # an episode produced ahead of a failure is dropped
        ds.finalize()
    shutil.rmtree(shard_dir / "images", ignore_errors=True)  # LeRobot's PNG staging folder, empty by now
    return {"episodes": episodes, "frames": frames, "skipped": skipped, "bad": bad, "warnings": warnings}


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
) -> WriteSummary:
    """Write one episode per job into a new LeRobot dataset at `root` (see the module docstring).

    A finished dataset at `root` is reused only when it was written from the same plan (settings, jobs, input
    checksums); otherwise the write is refused, naming what changed, unless `overwrite`: then the new dataset
    is written beside it and replaces it only once finished."""
    from rich.progress import Progress

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
    if work.exists():
        old_plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
        if old_plan.get("plan") != plan_hash:
            if not overwrite:
                raise FileExistsError(
                    f"{work} holds an unfinished write from other input or settings "
                    f"({_what_changed(old_plan, inputs)}); resuming would mix the two. Pass --overwrite to "
                    "discard it and start again, or rerun the interrupted command to finish it"
                )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(
        json.dumps({"plan": plan_hash, "repo_id": repo_id, "episodes": len(jobs), "source": {"files": inputs}})
    )

    # Shards are named by the job range they cover, and finished ranges are reused as they are: the jobs no
    # finished shard covers are split into new shards for this run's worker count. A resumed write therefore
    # holds every job exactly once, in job order, whatever --workers the interrupted run had.
    finished = _finished_shards(work)
    for d in work.glob("shard-*"):
        if d.is_dir() and d.name not in {_shard_name(a, b) for a, b in finished}:
            shutil.rmtree(d)  # an interrupted shard: redo it whole
    if shard_size is None:
        shard_size = SHARD_SIZE if workers > 1 else len(jobs)
    pending = _plan_shards(len(jobs), finished, workers, shard_size)
    indexed = list(enumerate(jobs))
    shards = {r: indexed[r[0] : r[1]] for r in [*finished, *pending]}
    results: dict[tuple[int, int], dict] = dict(finished)
    resumed = len(results)

    def finish(r: tuple[int, int], result: dict) -> None:
        (work / f"{_shard_name(*r)}.done.json").write_text(json.dumps(result))
        results[r] = result

    with Progress(transient=False) as progress:
        bar = progress.add_task(desc, total=len(jobs), completed=sum(len(shards[i]) for i in results))
        if workers <= 1 or len(pending) <= 1:
            for r in pending:
                finish(
                    r,
                    _write_shard(
                        work / _shard_name(*r), repo_id, fps, features, robot_type, shards[r], produce, skip_bad
                    ),
                )
                progress.update(bar, advance=len(shards[r]))
        else:
            ctx = mp.get_context("spawn")  # no fork: MuJoCo GL contexts and torch threads do not survive it
            with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                ticks = manager.Queue()
                futures = {
                    pool.submit(
                        _write_shard,
                        work / _shard_name(*r),
                        repo_id,
                        fps,
                        features,
                        robot_type,
                        shards[r],
                        produce,
                        skip_bad,
                        ticks,
                    ): r
                    for r in pending
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
        warnings=[w for i in sorted(results) for w in results[i].get("warnings", [])],
        resumed_shards=resumed,
    )
    if summary.episodes == 0:
        reasons = "; ".join(r for _, r in summary.skipped[:3]) or "; ".join(summary.bad[:3])
        raise RuntimeError(f"no episode could be written ({reasons}); {work} kept for inspection")

    final = work / "dataset"
    if final.exists():
        shutil.rmtree(final)
    filled = [work / _shard_name(*r) for r in sorted(results) if results[r]["episodes"] > 0]
    if len(filled) == 1:
        shutil.copytree(filled[0], final)
    else:
        merge_datasets([repo_id] * len(filled), repo_id, filled, final)
    summary.seconds = time.time() - start
    meta = dict(glam_meta or {})
    meta.setdefault("repo_id", repo_id)
    meta["write"] = {
        "plan": plan_hash,
        "episodes": summary.episodes,
        "frames": summary.frames,
        "skipped": summary.skipped,
        "bad": summary.bad,
        "warnings": summary.warnings,
    }
    provenance.write(final, meta)
    write_card(final)
    from glam_lerobot.validate import require_valid

    require_valid(final, f"the dataset written from {work}")  # a FAIL keeps `work` (shards and all) for a look
    if replace_root:  # the old dataset goes only now that the new one is complete
        old = work / "replaced"
        root.rename(old)
    final.rename(root)
    shutil.rmtree(work)
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

    info = json.loads((root / "meta" / "info.json").read_text())
    features = {k: {**ft, "shape": tuple(ft["shape"])} for k, ft in info["features"].items()}
    schema = get_hf_features_from_features(features).arrow_schema
    for path in sorted((root / "data").glob("*/*.parquet")):
        table = pq.read_table(path).select(schema.names).cast(schema)
        table = pa.Table.from_arrays(table.columns, schema=schema)  # the schema's own metadata, not pandas'
        episode = np.asarray(table["episode_index"])
        starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1], True])
        with pq.ParquetWriter(path, schema=schema, compression="snappy", use_dictionary=True) as writer:
            for a, b in zip(starts[:-1], starts[1:], strict=True):
                writer.write_table(table.slice(a, b - a))

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


def _shard_name(first: int, end: int) -> str:
    return f"shard-{first:06d}-{end:06d}"


def _finished_shards(work: Path) -> dict[tuple[int, int], dict]:
    """Job ranges [first, end) whose shard finished (its done-marker exists), with what the marker recorded."""
    out = {}
    for marker in work.glob("shard-*-*.done.json"):
        first, end = (int(x) for x in marker.name[len("shard-") : -len(".done.json")].split("-"))
        out[(first, end)] = json.loads(marker.read_text())
    return out


def _plan_shards(n_jobs: int, finished, workers: int, shard_size: int) -> list[tuple[int, int]]:
    """Split the jobs that no finished range covers into shards: at most shard_size jobs each, and at least as
    many shards as workers where the jobs allow it."""
    covered = np.zeros(n_jobs, bool)
    for first, end in finished:
        covered[first:end] = True
    gaps, start = [], None
    for i in range(n_jobs + 1):
        free = i < n_jobs and not covered[i]
        if free and start is None:
            start = i
        elif not free and start is not None:
            gaps.append((start, i))
            start = None
    left = int((~covered).sum())
    if not left:
        return []
    n = max(min(max(workers, 1), left), math.ceil(left / shard_size))
    out = []
    for a, b in gaps:  # each gap gets its share of the n shards (at least one)
        k = max(1, round(n * (b - a) / left))
        bounds = np.linspace(a, b, k + 1).astype(int)
        out += [(int(x), int(y)) for x, y in zip(bounds[:-1], bounds[1:], strict=True) if y > x]
    return out


def write_card(root: Path) -> None:
    from glam_lerobot.cards import write_dataset_card

    write_dataset_card(root)
