"""Normalisation statistics the policies compute themselves, from the dataset's parquet files.

LeRobot's `meta/stats.json` does not fit two of our needs:
- the policies regress *relative* action chunks (joint targets minus the joints at the chunk's first frame,
  gripper absolute), whose range is nothing like that of the stored absolute targets;
- in a merged mixture, auxiliary frames carry filler zeros in `observation.state` and `action`, which would drag
  the state and action statistics; only frames with `mixture.action_is_real` = 1 count here.
Everything is min/max per dimension (MIP normalises targets to [-1, 1]), except the 6D rotation of
`observation.ee_pose`, whose entries already lie in [-1, 1] and keep that range (schema.ee_rotation_dims). Only numeric columns are read, never video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glam_lerobot import schema

MAX_CHUNK_STARTS = 20_000  # relative-action chunks sampled for the statistics (all of them in small datasets)


def _column(table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    n = len(col)
    if hasattr(col, "flatten") and str(col.type).startswith(("list", "fixed_size_list", "large_list")):
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, -1)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, -1)


def read_columns(root: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named numeric columns of every episode, in dataset order, as (N, dim) float64 arrays."""
    import pyarrow.parquet as pq

    files = sorted((Path(root) / "data").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no data/*/*.parquet files: is this a LeRobot v3 dataset root?")
    tables = [pq.read_table(f, columns=names) for f in files]
    out = {n: np.concatenate([_column(t, n) for t in tables]) for n in names}
    order = np.lexsort((out["frame_index"][:, 0], out["episode_index"][:, 0])) if "frame_index" in out else None
    return {n: v[order] for n, v in out.items()} if order is not None else out


def _min_max(x: np.ndarray) -> dict[str, np.ndarray]:
    if len(x) == 0:
        raise ValueError("no frames to compute statistics from")
    return {"min": x.min(axis=0).astype(np.float32), "max": x.max(axis=0).astype(np.float32)}


def relative_chunks(
    action: np.ndarray, state: np.ndarray, episode: np.ndarray, starts: np.ndarray, chunk_size: int, arms: int
) -> np.ndarray:
    """(len(starts) * k, A) relative actions a[t+k] - s[t] (joints; gripper absolute) within each episode."""
    rows = []
    for k in range(chunk_size):
        idx = starts + k
        ok = idx < len(action)
        ok[ok] &= episode[idx[ok]] == episode[starts[ok]]
        rows.append(schema.relative_action(action[idx[ok]], state[starts[ok]], arms=arms))
    return np.concatenate(rows)


def compute_policy_stats(
    root: str | Path, features: dict, chunk_size: int, latent: bool, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Min/max of `observation.ee_pose`, `observation.state` and the relative action chunk (real frames only)
    and, with `latent`, of each latent dimension over non-padded chunk entries."""
    names = ["episode_index", "frame_index", schema.EE_POSE, schema.STATE, schema.ACTION]
    has_real = schema.ACTION_IS_REAL in features
    if has_real:
        names.append(schema.ACTION_IS_REAL)
    if latent:
        missing = [c for c in (schema.LATENT_CHUNK, schema.LATENT_CHUNK_IS_PAD) if c not in features]
        if missing:
            raise ValueError(
                f"{root}: glam_mip trains on a relabelled mixture, but the dataset has no {missing} "
                "column: run `glam-lerobot relabel` first (or use --policy.type=mip for plain BC)"
            )
        names += [schema.LATENT_CHUNK, schema.LATENT_CHUNK_IS_PAD]
    for col in (schema.EE_POSE, schema.STATE, schema.ACTION):
        if col not in features:
            raise ValueError(f"{root}: the policy needs the column {col!r}, which the dataset does not have")
    cols = read_columns(root, names)
    real = cols[schema.ACTION_IS_REAL][:, 0] > 0.5 if has_real else np.ones(len(cols[schema.ACTION]), bool)
    if not real.any():
        raise ValueError(f"{root}: no frame has a real robot action ({schema.ACTION_IS_REAL} is 0 everywhere)")
    arms = cols[schema.ACTION].shape[1] // schema.STATE_DIM_PER_ARM
    starts = np.flatnonzero(real)
    if len(starts) > MAX_CHUNK_STARTS:
        starts = np.sort(np.random.default_rng(seed).choice(starts, MAX_CHUNK_STARTS, replace=False))
    rel = relative_chunks(
        cols[schema.ACTION], cols[schema.STATE], cols["episode_index"][:, 0], starts, chunk_size, arms
    )
    ee = _min_max(cols[schema.EE_POSE])
    rot = schema.ee_rotation_dims(cols[schema.EE_POSE].shape[1] // schema.EE_POSE_DIM_PER_ARM)
    ee["min"][rot], ee["max"][rot] = -1.0, 1.0  # unit-vector entries: identity (schema.ee_rotation_dims)
    stats = {
        schema.EE_POSE: ee,
        schema.STATE: _min_max(cols[schema.STATE][real]),
        "relative_action": _min_max(rel),
    }
    if latent:
        chunk = cols[schema.LATENT_CHUNK]
        d = chunk.shape[1] // chunk_size
        if d * chunk_size != chunk.shape[1]:
            raise ValueError(
                f"{root}: {schema.LATENT_CHUNK} has {chunk.shape[1]} values per frame, not a multiple "
                f"of the policy's chunk_size {chunk_size}"
            )
        valid = cols[schema.LATENT_CHUNK_IS_PAD] < 0.5
        stats["latent"] = _min_max(chunk.reshape(len(chunk), chunk_size, d)[valid])
    return stats
