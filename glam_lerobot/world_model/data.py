"""Transitions (t, t+1) of a mixture, served in batches from the decoded-frame cache.

Every dataset of a mixture becomes a `Source`: its camera frames (memory-mapped from frames.py, under the
canonical camera names after the mixture's renames), end-effector poses and, for target datasets, robot state and
absolute actions. A transition is a pair of consecutive frames of the same episode; the last frame of an episode
starts no transition. Auxiliary rows carry zero state and action and `is_target = 0`, so the target-only loss
terms ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from glam_lerobot import schema
from glam_lerobot.world_model import frames as frame_cache


@dataclass
class Source:
    name: str  # repo_id
    role: str  # "target" | "auxiliary"
    root: Path
    revision: str | None
    images: dict[str, np.ndarray]  # canonical camera -> (N, H, W, C) uint8 (memmap)
    ee_pose: np.ndarray  # (N, P) float32
    episode_index: np.ndarray  # (N,)
    frame_index: np.ndarray  # (N,)
    state: np.ndarray | None = None  # (N, S), target only
    action: np.ndarray | None = None
    fps: int = schema.DEFAULT_FPS
    info: dict = field(default_factory=dict)
    camera_map: dict[str, str] = field(default_factory=dict)  # the mixture's renames: own -> canonical

    @property
    def is_target(self) -> bool:
        return self.role == "target"

    def __len__(self) -> int:
        return len(self.ee_pose)

    def transition_rows(self) -> np.ndarray:
        """Rows t whose next row t+1 is the next frame of the same episode."""
        same = (self.episode_index[1:] == self.episode_index[:-1]) & (self.frame_index[1:] == self.frame_index[:-1] + 1)
        return np.flatnonzero(same)

    def episode_bounds(self) -> list[tuple[int, int, int]]:
        """(episode_index, first row, end row) for each episode, in row order."""
        starts = np.flatnonzero(np.r_[True, self.episode_index[1:] != self.episode_index[:-1]])
        ends = np.r_[starts[1:], len(self.episode_index)]
        return [(int(self.episode_index[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def load_source(
    root: Path,
    name: str,
    role: str,
    revision: str | None,
    input_kind: str,
    camera_map: dict[str, str] | None = None,
    progress: bool = True,
) -> Source:
    """Read one dataset of a mixture (decoding its frames into the cache the first time)."""
    root = Path(root)
    info = frame_cache.read_info(root)
    feats = info["features"]
    for key in (schema.EE_POSE,):
        if key not in feats:
            raise ValueError(f"{root}/meta/info.json: dataset {name} has no '{key}' column; the world model needs it")
    columns = frame_cache.camera_columns(info, input_kind, camera_map)
    if not columns:
        kind = "RGB cameras" if input_kind == "rgb" else "mask columns (run `glam-lerobot masks add` first)"
        raise ValueError(f"{root}/meta/info.json: dataset {name} has no {kind} for {list(schema.CAMERAS)}")
    wanted = [schema.EE_POSE, "episode_index", "frame_index"]
    robot = role == "target"
    if robot:
        for key in (schema.STATE, schema.ACTION):
            if key not in feats:
                raise ValueError(f"{root}/meta/info.json: target dataset {name} has no '{key}' column")
        wanted += [schema.STATE, schema.ACTION]
    num = frame_cache.read_numeric(root, wanted)
    for key in (schema.EE_POSE, schema.STATE, schema.ACTION):
        if key in num and not np.isfinite(num[key]).all():
            row = int(np.argwhere(~np.isfinite(num[key]).all(1))[0, 0])
            raise ValueError(
                f"{root}: dataset {name}, episode {int(num['episode_index'][row])}, field '{key}': "
                f"NaN or infinite value at frame {int(num['frame_index'][row])}"
            )
    images = {cam: frame_cache.cached_frames(root, key, progress=progress) for cam, key in columns.items()}
    return Source(
        name=name,
        role=role,
        root=root,
        revision=revision,
        images=images,
        ee_pose=num[schema.EE_POSE].astype(np.float32),
        episode_index=num["episode_index"].reshape(-1).astype(np.int64),
        frame_index=num["frame_index"].reshape(-1).astype(np.int64),
        state=num[schema.STATE].astype(np.float32) if robot else None,
        action=num[schema.ACTION].astype(np.float32) if robot else None,
        fps=int(info["fps"]),
        info=info,
        camera_map=dict(camera_map or {}),
    )


def load_mixture_sources(mixture, input_kind: str, pull: bool = True, progress: bool = True) -> list[Source]:
    """Every dataset of a mixture (glam_lerobot.mixture.Mixture), target first (the `mixture.source` order)."""
    from glam_lerobot.mixture import resolve

    return [
        load_source(
            d.root, d.ref.repo_id, d.role, d.ref.revision, input_kind, mixture.camera_map(d.ref.repo_id), progress
        )
        for d in resolve(mixture, pull=pull)
    ]


def common_cameras(sources: list[Source]) -> tuple[str, ...]:
    cams = [c for c in schema.CAMERAS if all(c in s.images for s in sources)]
    if not cams:
        have = {s.name: sorted(s.images) for s in sources}
        raise ValueError(f"no camera is shared by every dataset of the mixture: {have}")
    return tuple(cams)


def native_image_size(sources: list[Source]) -> int:
    """The target's frame size (the world model's default input size)."""
    h, w = next(iter(sources[0].images.values())).shape[1:3]
    return int(h)


def compute_stats(sources: list[Source], arms: int) -> dict[str, dict[str, np.ndarray]]:
    """Mean/std of ee_pose over every frame; of state and *relative* action over the target frames.

    The 6D rotation of ee_pose keeps the identity (mean 0, std 1): see schema.ee_rotation_dims."""
    ee = np.concatenate([s.ee_pose for s in sources])
    mean, std = ee.mean(0), ee.std(0)
    rot = schema.ee_rotation_dims(arms)
    mean[rot], std[rot] = 0.0, 1.0
    stats = {"ee_pose": {"mean": mean, "std": std}}
    # per-step pose change (GLAM.idm_posterior): its std for position and gripper; the rotation keeps scale 1, for
    # the same reason as above (a one-source wobble must not be amplified)
    delta = np.concatenate([s.ee_pose[r + 1] - s.ee_pose[r] for s in sources for r in [s.transition_rows()]])
    dstd = delta.std(0) if len(delta) else np.ones(ee.shape[1])
    dstd[rot] = 1.0
    stats["ee_delta"] = {"mean": np.zeros_like(dstd), "std": dstd}
    targets = [s for s in sources if s.is_target]
    if targets:
        state = np.concatenate([s.state for s in targets])
        rel = np.concatenate([schema.relative_action(s.action, s.state, arms) for s in targets])
        stats["state"] = {"mean": state.mean(0), "std": state.std(0)}
        stats["action"] = {"mean": rel.mean(0), "std": rel.std(0)}
    return {k: {m: np.asarray(v, np.float32) for m, v in d.items()} for k, d in stats.items()}


def gather_images(
    source: Source, rows: np.ndarray, cameras: tuple[str, ...], input_kind: str, image_size: int
) -> torch.Tensor:
    """(B, C, H, W) uint8: the cameras of `rows` stacked on channels, resized to image_size when needed."""
    order = np.argsort(rows)  # memmaps read fastest in increasing order
    parts = []
    for cam in cameras:
        arr = source.images[cam][rows[order]]
        if input_kind == "masks":
            arr = arr[..., :1]  # masks are stored with identical channels; one is the mask
        parts.append(arr)
    stacked = np.concatenate(parts, axis=-1)[np.argsort(order)]
    t = torch.from_numpy(np.ascontiguousarray(stacked)).permute(0, 3, 1, 2)
    if t.shape[-1] != image_size or t.shape[-2] != image_size:
        mode = "nearest" if input_kind == "masks" else "area"
        t = F.interpolate(t.float(), size=(image_size, image_size), mode=mode).round().clamp(0, 255).to(torch.uint8)
    return t.contiguous()


class TransitionDataset(torch.utils.data.Dataset):
    """Every transition of every source. `__getitems__` returns a whole batch (one memmap gather per camera)."""

    def __init__(
        self, sources: list[Source], cameras: tuple[str, ...], input_kind: str, image_size: int, arms: int = 1
    ):
        self.sources, self.cameras, self.input_kind, self.image_size = sources, cameras, input_kind, image_size
        self.state_dim = schema.STATE_DIM_PER_ARM * arms
        rows = [s.transition_rows() for s in sources]
        self.source_id = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)]).astype(np.int64)
        self.row = np.concatenate(rows).astype(np.int64)
        if len(self.row) == 0:
            raise ValueError("the mixture has no transitions (every episode has a single frame)")

    def __len__(self) -> int:
        return len(self.row)

    def is_target(self) -> np.ndarray:
        """(len,) bool: which transitions come from a target dataset."""
        return np.array([s.is_target for s in self.sources])[self.source_id]

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        out: dict[str, list] = {
            k: []
            for k in (
                "images_t",
                "images_next",
                "ee_t",
                "ee_next",
                "state_t",
                "state_next",
                "action",
                "is_target",
                "position",
            )
        }
        for sid in np.unique(self.source_id[indices]):
            pos = np.flatnonzero(self.source_id[indices] == sid)
            src, rows = self.sources[sid], self.row[indices[pos]]
            both = gather_images(src, np.concatenate([rows, rows + 1]), self.cameras, self.input_kind, self.image_size)
            out["images_t"].append(both[: len(rows)])
            out["images_next"].append(both[len(rows) :])
            out["ee_t"].append(torch.from_numpy(src.ee_pose[rows]))
            out["ee_next"].append(torch.from_numpy(src.ee_pose[rows + 1]))
            if src.is_target:
                out["state_t"].append(torch.from_numpy(src.state[rows]))
                out["state_next"].append(torch.from_numpy(src.state[rows + 1]))
                out["action"].append(torch.from_numpy(src.action[rows]))
            else:
                zeros = torch.zeros(len(rows), self.state_dim)
                out["state_t"].append(zeros)
                out["state_next"].append(zeros)
                out["action"].append(zeros)
            out["is_target"].append(torch.full((len(rows),), float(src.is_target)))
            out["position"].append(torch.from_numpy(pos))
        batch = {k: torch.cat(v) for k, v in out.items()}
        back = torch.argsort(batch.pop("position"))  # restore the sampler's order
        return {k: v[back] for k, v in batch.items()}


class StepBatchSampler(torch.utils.data.Sampler):
    """Batch k is drawn from its own generator seeded by (seed, rank, k): the same batches whether or not a run
    was interrupted and resumed at step k, and different batches on each accelerate process.

    With `is_target` (one bool per transition) and `target_fraction` f, every batch holds round(f * B) target
    transitions and the rest auxiliary ones (each group drawn uniformly). The target rows are the only ones the
    grounding terms (action encoder, alignment, action decoder) see: drawn uniformly from 20 target + 80 UMI
    episodes, ~6 of 32 rows were target rows, and the grounding starved. A mixture with one group only is drawn
    uniformly."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        steps: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        is_target: np.ndarray | None = None,
        target_fraction: float | None = None,
    ):
        self.n, self.batch_size, self.steps, self.seed, self.start, self.rank = (
            n,
            batch_size,
            steps,
            seed,
            start_step,
            rank,
        )
        self.groups = None
        if is_target is not None and target_fraction is not None:
            if not 0.0 < target_fraction < 1.0:
                raise ValueError(f"target_fraction must be between 0 and 1 (exclusive), got {target_fraction}")
            tgt, aux = np.flatnonzero(is_target), np.flatnonzero(~np.asarray(is_target, bool))
            if len(tgt) and len(aux):
                k = min(max(round(target_fraction * batch_size), 1), batch_size - 1)
                self.groups = [(torch.from_numpy(tgt), k), (torch.from_numpy(aux), batch_size - k)]

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self):
        for k in range(self.start, self.steps):
            g = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, self.rank, k]).generate_state(1)[0])
            )
            if self.groups is None:
                yield torch.randint(0, self.n, (self.batch_size,), generator=g).tolist()
            else:
                yield torch.cat([idx[torch.randint(0, len(idx), (m,), generator=g)] for idx, m in self.groups]).tolist()
