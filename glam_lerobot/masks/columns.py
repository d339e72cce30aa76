"""Masks as LeRobot columns: the stored image form (stats are written by glam_lerobot.revisions).

A mask column is an `image` feature of shape (H, W, 3) with three identical channels in {0, 255} (see
schema.mask_features for why not one channel). Stored as PNG inside the parquet files, so it stays binary.
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
