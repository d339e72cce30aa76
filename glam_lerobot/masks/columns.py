"""Masks as LeRobot columns: the stored image form, and stats in LeRobot's own image-stats layout.

A mask column is an `image` feature of shape (H, W, 3) with three identical channels in {0, 255} (see
schema.mask_features for why not one channel). Stored as PNG inside the parquet files, so it stays binary.
LeRobot never computes stats for columns added after recording (add_features leaves them out and recompute_stats
skips images), so they are computed here exactly as LeRobot does for images: per channel, on a sample of frames,
downsampled, divided by 255, shape (3, 1, 1).
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image


def to_image(mask: np.ndarray) -> np.ndarray:
    """(..., H, W) bool -> (..., H, W, 3) uint8 in {0, 255}: the stored form."""
    m = np.asarray(mask).astype(bool)
    return np.repeat((m * np.uint8(255))[..., None], 3, axis=-1)


def from_image(image) -> np.ndarray:
    """A stored mask (HWC or CHW, uint8 or float in [0, 1], numpy / torch / PIL) -> (H, W) bool."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a[0]
    elif a.ndim == 3:
        a = a[..., 0]
    return a > (0.5 if a.dtype.kind == "f" else 127)


def png_cell(mask: np.ndarray) -> dict:
    """(H, W) bool -> the cell `datasets.Image` stores ({bytes, path}), so a column never holds raw pixel arrays."""
    buf = io.BytesIO()
    PIL.Image.fromarray(to_image(mask)).save(buf, format="PNG", compress_level=1)
    return {"bytes": buf.getvalue(), "path": None}


def pack(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> bit-packed uint8, for the per-episode cache files (8x smaller than bool)."""
    return np.packbits(masks.astype(bool), axis=-1)


def unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


def episode_stats(masks: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-episode image stats (min, max, mean, std, count, q01..q99) for one episode's (T, H, W) masks."""
    from lerobot.datasets.compute_stats import auto_downsample_height_width, get_feature_stats, sample_indices

    idx = sample_indices(len(masks))
    imgs = np.stack([auto_downsample_height_width(np.moveaxis(to_image(masks[i]), -1, 0)) for i in idx])
    stats = get_feature_stats(imgs, axis=(0, 2, 3), keepdims=True)
    return {k: v if k == "count" else np.squeeze(v / 255.0, axis=0) for k, v in stats.items()}
