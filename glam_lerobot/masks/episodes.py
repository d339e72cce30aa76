"""Read what the mask backends need from a parent dataset, one episode at a time, with LeRobot's own readers.

Camera frames are decoded per episode in one call to LeRobot's `decode_video_frames` (all timestamps at once,
far faster than indexing the dataset frame by frame); cameras stored as `image` features are read from parquet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glam_lerobot import schema


def open_dataset(root: Path | str):
    """The parent dataset at `root`, read with stock LeRobot (pyav decoder: no torchcodec probe)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import provenance

    root = Path(root)
    if not (root / "meta" / "info.json").exists():
        raise FileNotFoundError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    repo_id = provenance.read(root).get("repo_id") or f"local/{root.name}"
    return LeRobotDataset(repo_id, root=root, video_backend="pyav")


def cameras_of(ds) -> list[str]:
    """The toolkit cameras this dataset has (observation.images.<camera>), in schema order first."""
    keys = [k for k in ds.meta.camera_keys if k.startswith(schema.IMAGE.format(camera=""))]
    names = [k[len(schema.IMAGE.format(camera="")) :] for k in keys]
    return sorted(names, key=lambda c: (schema.CAMERAS.index(c) if c in schema.CAMERAS else len(schema.CAMERAS), c))


def image_size(ds, camera: str) -> tuple[int, int]:
    h, w, _ = ds.meta.features[schema.image_key(camera)]["shape"]
    return int(h), int(w)


def episode_range(ds, ep: int) -> tuple[int, int]:
    row = ds.meta.episodes[ep]
    return int(row["dataset_from_index"]), int(row["dataset_to_index"])


def camera_frames(ds, ep: int, camera: str) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of one camera for one episode."""
    key = schema.image_key(camera)
    lo, hi = episode_range(ds, ep)
    if key in ds.meta.video_keys:
        from lerobot.datasets.video_utils import decode_video_frames

        row = ds.meta.episodes[ep]
        ts = np.asarray(ds.hf_dataset.with_format(None)[lo:hi]["timestamp"], dtype=np.float64)
        frames = decode_video_frames(
            ds.root / ds.meta.get_video_file_path(ep, key),
            [float(row[f"videos/{key}/from_timestamp"] + t) for t in ts],
            ds.tolerance_s,
            "pyav",
            return_uint8=True,
        )
        return frames.permute(0, 2, 3, 1).numpy()
    images = ds.hf_dataset.with_format(None)[lo:hi][key]  # PIL images
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


def column(ds, ep: int, key: str) -> np.ndarray:
    """(T, ...) values of a numeric column for one episode (e.g. schema.SIM_QPOS)."""
    if key not in ds.meta.features:
        raise KeyError(f"{ds.root}: the dataset has no column {key!r}")
    lo, hi = episode_range(ds, ep)
    return np.asarray(ds.hf_dataset.with_format(None)[lo:hi][key], dtype=np.float64)
