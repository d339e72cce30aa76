"""Relabel every transition of a mixture with GLAM latent actions (Eq. 7), as new revisions and one merged dataset.

    relabel(world_model_dir, mixture, output) -> RelabelSummary

1. Latents. For every frame t of every dataset, `latent.action` = the IDM posterior mean mu_phi(x_t, x_t+1).
   Episode ends are explicit: the last frame of an episode has no next frame, so its latent repeats the one
   before it (a policy that asks at the last frame gets the latest motion, not a made-up one) and
   `latent.is_pad` = 1 marks it; a one-frame episode gets a zero latent, also marked.
2. Revisions. Each dataset gets a new revision `<output>/datasets/<name>@<revision>` = parent + those two
   columns (glam_lerobot.revisions.add_columns: the parent's files copied byte for byte, the columns appended
   to its data files), whose
   meta/glam.json records the world model (path, Hub repo/revision when known, sha256 of its weights). The
   parent is only read.
3. Merged mixture dataset `<output>/mixture`: every frame of every dataset in one LeRobot dataset that stock
   `lerobot-train --policy.type=glam_mip` trains on. Cameras renamed per the mixture; auxiliary frames carry
   zero `observation.state` / `action` and `mixture.action_is_real` = 0; `mixture.source` indexes the sources
   listed in its meta/glam.json. `latent.chunk` at frame t holds latents t .. t+H-1 of the same episode
   (flattened, H = 20) and `latent.chunk_is_pad` marks positions past the episode end or on its last frame
   (whose latent is a repeat, not a transition); padded positions past the end are zero.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glam_lerobot import provenance, schema
from glam_lerobot.world_model import checkpoint as ckpt
from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model import frames as frame_cache

HORIZON = 20


@dataclass
class RelabelSummary:
    revisions: dict[str, Path] = field(default_factory=dict)  # repo_id -> new revision root
    merged: Path | None = None
    transitions: int = 0
    frames: int = 0
    infer_seconds: float = 0.0
    seconds: float = 0.0
    tasks: int = 1
    submitted: list[str] = field(default_factory=list)  # Slurm job ids (inference, the rest): queued, not done
    logs: Path | None = None
    output: Path | None = None

    def lines(self) -> list[str]:
        if self.submitted:
            infer, rest = self.submitted
            return [
                f"queued the inference as {self.tasks} Slurm task(s) (job {infer}) and the revisions and merged "
                f"mixture as job {rest} (after it); they appear in {self.output}; logs in {self.logs}"
            ]
        out = [
            f"relabelled {self.transitions} transitions ({self.frames} frames) in {self.seconds:.1f} s end to end: "
            f"{self.transitions / max(self.seconds, 1e-9):.0f} transitions/s (inference alone "
            f"{self.infer_seconds:.1f} s, {self.transitions / max(self.infer_seconds, 1e-9):.0f}/s; the rest is "
            "reading the frames and writing the revisions and the merged mixture)"
        ]
        out += [f"  new revision of {k}: {v}" for k, v in self.revisions.items()]
        if self.merged:
            out.append(f"  merged mixture dataset: {self.merged}")
        return out


@torch.no_grad()
def idm_latents(
    model,
    src: wm_data.Source,
    rows: np.ndarray,
    image_src: wm_data.Source | None = None,
    image_rows: np.ndarray | None = None,
    batch: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """IDM posterior means (len(rows), d) for transitions rows -> rows + 1 of `src`. With `image_src`, the images
    come from `image_rows` of that source and the poses from `src` (diagnose's image-swap probe)."""
    c = model.config
    image_src = image_src or src
    image_rows = rows if image_rows is None else image_rows
    out = []
    for i in range(0, len(rows), batch):
        r, ir = rows[i : i + batch], image_rows[i : i + batch]
        imgs = wm_data.gather_images(image_src, np.concatenate([ir, ir + 1]), c.cameras, c.input, c.image_size)
        imgs = imgs.to(device)
        ee = torch.from_numpy(src.ee_pose[np.concatenate([r, r + 1])]).to(device)
        z = model.infer_latents(imgs[: len(r)], ee[: len(r)], imgs[len(r) :], ee[len(r) :])
        out.append(z.float().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def infer_source_latents(
    model,
    source: wm_data.Source,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    episodes: set[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(latents (N, d) float32, is_pad (N,) float32) for every frame of one source (see the module docstring);
    with `episodes`, only the rows of those episodes are labelled (the others stay zero / padded)."""
    n = len(source)
    latents = np.zeros((n, model.config.latent_dim), np.float32)
    is_pad = np.ones(n, np.float32)
    rows = source.transition_rows()
    if episodes is not None:
        rows = rows[np.isin(source.episode_index[rows], list(episodes))]
    if len(rows):
        latents[rows] = idm_latents(model, source, rows, batch=batch_size, device=device)
        is_pad[rows] = 0.0
    for episode, start, end in source.episode_bounds():
        if end - start >= 2 and (episodes is None or episode in episodes):  # the last frame repeats the one before
            latents[end - 1] = latents[end - 2]
    return latents, is_pad


def latent_chunks(
    latents: np.ndarray, is_pad: np.ndarray, episode_index: np.ndarray, horizon: int = HORIZON
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame t: latents t .. t+H-1 of the same episode, flattened (N, H*d), and the pad mask (N, H)."""
    n, d = latents.shape
    chunk = np.zeros((n, horizon, d), np.float32)
    pad = np.ones((n, horizon), np.float32)
    starts = np.flatnonzero(np.r_[True, episode_index[1:] != episode_index[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends, strict=True):
        for t in range(s, e):
            k = min(horizon, e - t)
            chunk[t, :k] = latents[t : t + k]
            pad[t, :k] = is_pad[t : t + k]
    return chunk.reshape(n, horizon * d), pad


def action_chunks(
    actions: np.ndarray, episode_index: np.ndarray, horizon: int = HORIZON
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame t: actions t .. t+H-1 of the same episode, flattened (N, H*A), and the pad mask (N, H), with the
    semantics of LeRobot's delta query (an index past the episode's end repeats its last action and is padding)."""
    n = len(actions)
    steps = np.arange(horizon)
    starts = np.flatnonzero(np.r_[True, episode_index[1:] != episode_index[:-1]])
    last = np.repeat(np.r_[starts[1:], n] - 1, np.diff(np.r_[starts, n]))  # last row of each row's episode
    rows = np.arange(n)[:, None] + steps[None, :]
    pad = rows > last[:, None]
    chunk = actions[np.minimum(rows, last[:, None])]
    return chunk.reshape(n, -1).astype(np.float32), pad.astype(np.float32)


def action_chunk_features(action_dim: int, horizon: int = HORIZON) -> dict[str, dict]:
    return {
        schema.ACTION_CHUNK: {"dtype": "float32", "shape": (horizon * action_dim,), "names": None},
        schema.ACTION_CHUNK_IS_PAD: {"dtype": "float32", "shape": (horizon,), "names": None},
    }


def latent_features(latent_dim: int) -> dict[str, dict]:
    return {
        schema.LATENT: {"dtype": "float32", "shape": (latent_dim,), "names": [f"z{i}" for i in range(latent_dim)]},
        schema.LATENT_IS_PAD: {"dtype": "float32", "shape": (1,), "names": None},
    }


def relabel(
    world_model: Path | str,
    mixture,
    output: Path | str,
    *,
    revision: str | None = None,
    horizon: int = HORIZON,
    batch_size: int = 256,
    merged: bool = True,
    frames: str = "image",
    workers: int | str = 1,
    progress: bool = True,
    command: str = "glam-lerobot relabel",
    sources: list | None = None,
    executor=None,
) -> RelabelSummary:
    """See the module docstring. `executor` (glam_lerobot.executors.Executor) runs the inference as datatrove
    tasks of whole episodes (each loads the world model once, on a GPU where its task has one) and the rest as
    one task after them; without it (or local without --tasks) everything runs in this process."""
    from rich.progress import Progress

    if frames not in FRAME_STORAGE:
        raise ValueError(f"frames must be one of {FRAME_STORAGE}, got {frames!r}")
    t0 = time.perf_counter()
    output = Path(output)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, config = ckpt.load_world_model(world_model, device)
    wm_id = ckpt.identity(world_model)
    revision = revision or f"glam-latents-{wm_id['sha256'][:8]}"
    if sources is None:
        sources = wm_data.load_mixture_sources(mixture, model.config.input, progress=progress)
    missing = [c for c in model.config.cameras if any(c not in s.images for s in sources)]
    if missing:
        raise ValueError(
            f"the world model reads cameras {list(model.config.cameras)}, but some datasets lack {missing}"
        )
    planned = [output / "datasets" / f"{s.name.split('/')[-1]}@{revision}" for s in sources]
    for p in planned + ([output / "mixture"] if merged else []):
        if p.exists():
            raise FileExistsError(f"{p} already exists; choose another --output or --revision")
    job = RelabelJob(
        world_model=str(world_model),
        mixture=mixture,
        output=output,
        revision=revision,
        horizon=horizon,
        batch_size=batch_size,
        merged=merged,
        frames=frames,
        workers=workers,
        command=command,
        input_kind=model.config.input,
        units=[(i, e) for i, s in enumerate(sources) for e, _, _ in s.episode_bounds()],
    )

    if executor is not None and (executor.kind != "local" or executor.tasks):
        return job.run_on(executor, t0)
    results, infer_seconds = [], 0.0
    with Progress(disable=not progress) as bar:
        task = bar.add_task("relabel", total=sum(len(s) for s in sources))
        for s in sources:
            t = time.perf_counter()
            results.append(infer_source_latents(model, s, batch_size, device))
            infer_seconds += time.perf_counter() - t
            bar.update(task, advance=len(s))
    return job.finish(sources, results, infer_seconds, t0)


RELABEL_EPISODES_PER_TASK = 50  # a cluster task's share when --tasks is not given


@dataclass
class RelabelJob:
    """One relabel: what its inference tasks and its final task need (pickled to worker processes and nodes)."""

    world_model: str
    mixture: object
    output: Path
    revision: str
    horizon: int
    batch_size: int
    merged: bool
    frames: str
    workers: int | str
    command: str
    input_kind: str
    units: list[tuple[int, int]]  # (source index, episode index), the order tasks share them in
    bounds: list[int] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.output / ".relabel"

    def run_on(self, executor, t0: float) -> RelabelSummary:
        """Inference as datatrove tasks, then `finish_task` (after them, as its own job on Slurm)."""
        from glam_lerobot import executors
        from glam_lerobot.writing import resolve_workers

        workers = resolve_workers(self.workers, len(self.units))
        tasks = executors.task_count(executor, len(self.units), workers, None, RELABEL_EPISODES_PER_TASK)
        self.bounds = executors.shard_bounds(len(self.units), tasks)
        logs = executors.logging_dir(executor, self.work, self.output.with_name(self.output.name + ".relabel-slurm"))
        shutil.rmtree(self.work, ignore_errors=True)  # latents of an earlier, unfinished relabel: recomputed
        shutil.rmtree(logs, ignore_errors=True)
        self.work.mkdir(parents=True)
        ids = executors.run(
            executor, self.infer_task, tasks, workers, logs, finish=self.finish_task, job_name="relabel"
        )
        if ids:
            return RelabelSummary(submitted=ids, tasks=tasks, logs=logs, output=self.output)
        summary = self.finish_task(0)
        summary.seconds, summary.tasks = time.perf_counter() - t0, tasks
        return summary

    def infer_task(self, rank: int) -> None:
        """Task `rank`: load the world model once, label its episodes, save their latents."""
        t = time.perf_counter()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _ = ckpt.load_world_model(self.world_model, device)
        sources = wm_data.load_mixture_sources(self.mixture, self.input_kind, pull=False, progress=False)
        mine: dict[int, set[int]] = {}
        for i, e in self.units[self.bounds[rank] : self.bounds[rank + 1]]:
            mine.setdefault(i, set()).add(e)
        arrays = {}
        for i, episodes in mine.items():
            latents, is_pad = infer_source_latents(model, sources[i], self.batch_size, device, episodes)
            rows = np.flatnonzero(np.isin(sources[i].episode_index, list(episodes)))
            arrays |= {f"{i}.rows": rows, f"{i}.latents": latents[rows], f"{i}.is_pad": is_pad[rows]}
        arrays["seconds"] = np.array(time.perf_counter() - t)
        np.savez(self.work / f"latents-{rank:05d}.npz", **arrays)

    def finish_task(self, _rank: int = 0) -> RelabelSummary:
        """After every inference task: gather the latents, then write revisions and the merged mixture."""
        t0 = time.perf_counter()
        sources = wm_data.load_mixture_sources(self.mixture, self.input_kind, pull=False, progress=False)
        d = None
        results = []
        parts = [np.load(p) for p in sorted(self.work.glob("latents-*.npz"))]
        infer_seconds = sum(float(p["seconds"]) for p in parts)
        for i, s in enumerate(sources):
            pieces = [p for p in parts if f"{i}.rows" in p]
            d = d or next(p[f"{i}.latents"].shape[1] for p in pieces)
            latents, is_pad = np.zeros((len(s), d), np.float32), np.ones(len(s), np.float32)
            for p in pieces:
                latents[p[f"{i}.rows"]], is_pad[p[f"{i}.rows"]] = p[f"{i}.latents"], p[f"{i}.is_pad"]
            results.append((latents, is_pad))
        summary = self.finish(sources, results, infer_seconds, t0)
        shutil.rmtree(self.work)
        return summary

    def finish(self, sources: list, results: list, infer_seconds: float, t0: float) -> RelabelSummary:
        """Write each dataset's new revision and the merged mixture from the latents of every frame."""
        from glam_lerobot.revisions import add_columns

        wm_id = ckpt.identity(self.world_model)
        summary = RelabelSummary(infer_seconds=infer_seconds)
        summary.transitions = sum(int((is_pad == 0).sum()) for _, is_pad in results)
        summary.frames = sum(len(s) for s in sources)
        feats = latent_features(results[0][0].shape[1])
        model_name = wm_id["repo_id"] or wm_id["path"]
        details = {
            "model": f"{model_name} (sha256 {wm_id['sha256'][:12]})",
            "world_model": wm_id,
            "episode_end": "last frame repeats the previous latent, latent.is_pad = 1",
            "mixture": self.mixture.name if self.mixture is not None else None,
        }
        for s, (latents, is_pad) in zip(sources, results, strict=True):
            cols = {
                schema.LATENT: (latents, feats[schema.LATENT]),
                schema.LATENT_IS_PAD: (is_pad[:, None], feats[schema.LATENT_IS_PAD]),
            }
            root = self.output / "datasets" / f"{s.name.split('/')[-1]}@{self.revision}"
            summary.revisions[s.name] = add_columns(
                s.root, cols, revision=self.revision, command=self.command, details=details, output_root=root
            )
        if self.merged:
            summary.merged = write_merged(
                self.output / "mixture",
                self.mixture,
                sources,
                results,
                wm_id,
                self.revision,
                self.horizon,
                summary.revisions,
                workers=self.workers,
                frames=self.frames,
            )
        summary.seconds = time.perf_counter() - t0
        return summary


# ---- the merged mixture dataset --------------------------------------------------------------------------------


# How the merged mixture stores its camera frames. "image" (PNG in the parquet, LeRobot's `image` feature): random
# access costs no AV1 decoding, so policy training on a CPU reaches ~90% of its in-memory floor with or without
# FFmpeg (benchmarks/results/policy-speed: 162 vs 150 samples/s through pyav with one DataLoader worker, 128 vs 71
# without). "video": AV1, ~3x smaller, for large mixtures that must stay small.
FRAME_STORAGE = ("image", "video")


def merged_features(
    sources: list[wm_data.Source], latent_dim: int, horizon: int, image_size: int, arms: int, frames: str = "image"
) -> dict[str, dict]:
    cams = tuple(c for c in schema.CAMERAS if all(schema.image_key(c) in _rgb(s) for s in sources))
    feats = schema.features(arms=arms, image_size=(image_size, image_size), cameras=cams, robot=True)
    for c in cams:
        feats[schema.image_key(c)]["dtype"] = frames
    feats.update(latent_features(latent_dim))
    feats[schema.LATENT_CHUNK] = {"dtype": "float32", "shape": (horizon * latent_dim,), "names": None}
    feats[schema.LATENT_CHUNK_IS_PAD] = {"dtype": "float32", "shape": (horizon,), "names": None}
    feats.update(action_chunk_features(feats[schema.ACTION]["shape"][0], horizon))
    feats[schema.SOURCE] = {"dtype": "int64", "shape": (1,), "names": None}
    feats[schema.ACTION_IS_REAL] = {"dtype": "float32", "shape": (1,), "names": None}
    return feats


def _rgb(source: wm_data.Source) -> dict[str, str]:
    """canonical RGB column -> the dataset's own column (renames applied)."""
    cols = frame_cache.camera_columns(source.info, "rgb", source.camera_map)
    return {schema.image_key(cam): col for cam, col in cols.items()}


def _episode_tasks(root: Path) -> dict[int, str]:
    eps = frame_cache.read_episodes(root)
    return {int(e): (list(t)[0] if len(t) else "") for e, t in zip(eps["episode_index"], eps["tasks"], strict=True)}


def write_merged(
    root: Path,
    mixture,
    sources: list[wm_data.Source],
    results,
    wm_id: dict,
    revision: str,
    horizon: int,
    revisions: dict[str, Path],
    workers: int | str = 1,
    frames: str = "image",
) -> Path:
    from glam_lerobot.writing import write_dataset

    root = Path(root)
    work = root.with_name(root.name + ".arrays")
    work.mkdir(parents=True, exist_ok=True)
    first = sources[0]
    arms = first.ee_pose.shape[1] // schema.EE_POSE_DIM_PER_ARM
    size = int(next(iter(first.images.values())).shape[1])
    d = results[0][0].shape[1]
    feats = merged_features(sources, d, horizon, size, arms, frames)
    cams = [k for k in feats if k.startswith(schema.IMAGE.format(camera=""))]
    jobs = []
    for i, (s, (latents, is_pad)) in enumerate(zip(sources, results, strict=True)):
        chunk, chunk_pad = latent_chunks(latents, is_pad, s.episode_index, horizon)
        action = s.action if s.action is not None else np.zeros((len(s), schema.STATE_DIM_PER_ARM * arms), np.float32)
        action_chunk, action_chunk_pad = action_chunks(action, s.episode_index, horizon)
        arrays = work / f"source-{i:03d}.npz"
        np.savez(
            arrays,
            latents=latents,
            is_pad=is_pad,
            chunk=chunk,
            chunk_pad=chunk_pad,
            ee=s.ee_pose,
            state=s.state if s.state is not None else np.zeros((len(s), schema.STATE_DIM_PER_ARM * arms), np.float32),
            action=action,
            action_chunk=action_chunk,
            action_chunk_pad=action_chunk_pad,
        )
        own = _rgb(s)
        for key in cams:  # RGB is decoded into the cache here even when the world model read masks
            frame_cache.cached_frames(s.root, own[key], progress=False)
        frames = {key: str(_cache_path(s.root, own[key])) for key in cams}
        tasks = _episode_tasks(s.root)
        for ep, start, end in s.episode_bounds():
            jobs.append(
                {
                    "file": str(s.root),
                    "episode": ep,
                    "source": i,
                    "arrays": str(arrays),
                    "rows": [start, end],
                    "frames": frames,
                    "image_size": size,
                    "robot": s.is_target,
                    "task": tasks.get(ep, ""),
                }
            )
    target = next((s for s in sources if s.is_target), first)
    meta = {k: v for k, v in provenance.read(target.root).items() if k in ("embodiment", "arms", "task")}
    meta.update(
        {
            "repo_id": f"local/{mixture.name}-glam" if mixture is not None else "local/mixture-glam",
            "mixture": mixture.to_dict() if mixture is not None else None,
            "sources": [
                {
                    "index": i,
                    "repo_id": s.name,
                    "role": s.role,
                    "revision": s.revision,
                    "root": str(s.root),
                    "relabelled_revision": revision,
                    "relabelled_root": str(revisions.get(s.name, "")),
                    "episodes": len(s.episode_bounds()),
                    "frames": len(s),
                }
                for i, s in enumerate(sources)
            ],
            "world_model": wm_id,
            "latent_dim": d,
            "horizon": horizon,
            "columns": {
                "source": schema.SOURCE,
                "action_is_real": schema.ACTION_IS_REAL,
                "latent": schema.LATENT,
                "latent_chunk": schema.LATENT_CHUNK,
                "latent_chunk_is_pad": schema.LATENT_CHUNK_IS_PAD,
                "action_chunk": schema.ACTION_CHUNK,
                "action_chunk_is_pad": schema.ACTION_CHUNK_IS_PAD,
            },
            "history": [
                {
                    "command": "glam-lerobot relabel",
                    "revision": revision,
                    "columns": [
                        schema.LATENT,
                        schema.LATENT_IS_PAD,
                        schema.LATENT_CHUNK,
                        schema.LATENT_CHUNK_IS_PAD,
                        schema.ACTION_CHUNK,
                        schema.ACTION_CHUNK_IS_PAD,
                        schema.SOURCE,
                        schema.ACTION_IS_REAL,
                    ],
                    "model": f"{wm_id['repo_id'] or wm_id['path']} (sha256 {wm_id['sha256'][:12]})",
                    "world_model": wm_id,
                }
            ],
        }
    )
    write_dataset(
        root,
        meta["repo_id"],
        first.fps,
        feats,
        jobs,
        produce_merged_episode,
        workers=workers,
        glam_meta=meta,
        robot_type=meta.get("embodiment"),
        desc="merged mixture",
    )
    shutil.rmtree(work, ignore_errors=True)
    return root


def _cache_path(root: Path, key: str) -> Path:
    return frame_cache.cache_dir() / frame_cache.fingerprint(root) / f"{key}.npy"


def produce_merged_episode(job: dict) -> dict:
    """One episode of the merged dataset from the cached frames and the saved arrays (runs in writer workers)."""
    a, b = job["rows"]
    arr = np.load(job["arrays"])
    n = b - a
    frames = {}
    for key, path in job["frames"].items():
        imgs = np.asarray(np.load(path, mmap_mode="r")[a:b])
        if imgs.shape[1] != job["image_size"]:
            t = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
            t = torch.nn.functional.interpolate(t, size=(job["image_size"],) * 2, mode="area")
            imgs = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        frames[key] = imgs
    frames[schema.EE_POSE] = arr["ee"][a:b]
    frames[schema.STATE] = arr["state"][a:b]
    frames[schema.ACTION] = arr["action"][a:b]
    frames[schema.LATENT] = arr["latents"][a:b]
    frames[schema.LATENT_IS_PAD] = arr["is_pad"][a:b, None]
    frames[schema.LATENT_CHUNK] = arr["chunk"][a:b]
    frames[schema.LATENT_CHUNK_IS_PAD] = arr["chunk_pad"][a:b]
    frames[schema.ACTION_CHUNK] = arr["action_chunk"][a:b]
    frames[schema.ACTION_CHUNK_IS_PAD] = arr["action_chunk_pad"][a:b]
    frames[schema.SOURCE] = np.full((n, 1), job["source"], np.int64)
    frames[schema.ACTION_IS_REAL] = np.full((n, 1), 1.0 if job["robot"] else 0.0, np.float32)
    return {"task": job["task"], "frames": frames}
