"""Put recorded streams on the dataset's fixed fps grid.

LeRobot stores frame k at timestamp k / fps, so every stream of an episode (joint states at 40 Hz, cameras at 30 Hz,
UMI video at 59.94 fps) is sampled at the grid times t0 + k / fps. Two policies, both without interpolation so that
images and numbers of one frame always come from real recorded samples:

- "nearest": the sample closest in time (ties go to the earlier one). Default; the error is at most half a
  sample period either way.
- "previous": the latest sample at or before the grid time (zero-order hold), i.e. only what a controller running at
  that instant could have seen.
"""

from __future__ import annotations

import numpy as np

SYNC_MODES = ("nearest", "previous")


def grid_times(start: float, end: float, fps: float) -> np.ndarray:
    """Times start, start + 1/fps, ... up to and including end (with a nanosecond of slack)."""
    if end < start:
        return np.zeros(0, dtype=np.float64)
    n = int(np.floor((end - start) * fps + 1e-6)) + 1
    return start + np.arange(n, dtype=np.float64) / fps


def first_decrease(times: np.ndarray) -> int | None:
    """Index i of the first sample with times[i] < times[i-1], or None when the stream never goes back in time."""
    bad = np.flatnonzero(np.diff(np.asarray(times, dtype=np.float64)) < 0)
    return int(bad[0]) + 1 if bad.size else None


def sample_indices(source_times: np.ndarray, grid: np.ndarray, mode: str = "nearest") -> np.ndarray:
    """For each grid time, the index of the source sample chosen by `mode` (source_times must be non-decreasing)."""
    if mode not in SYNC_MODES:
        raise ValueError(f"sync mode must be one of {SYNC_MODES}, not {mode!r}")
    src = np.asarray(source_times, dtype=np.float64)
    after = np.searchsorted(src, grid, side="right")  # first sample strictly after each grid time
    previous = np.clip(after - 1, 0, len(src) - 1)
    if mode == "previous":
        return previous
    following = np.clip(after, 0, len(src) - 1)
    take_following = np.abs(src[following] - grid) < np.abs(grid - src[previous])
    return np.where(take_following, following, previous)


def resample_uniform(n_samples: int, source_fps: float, fps: float, mode: str = "nearest") -> np.ndarray:
    """Indices into a stream recorded at a constant `source_fps` (UMI video) for an `fps` grid over the same span."""
    src = np.arange(n_samples, dtype=np.float64) / source_fps
    return sample_indices(src, grid_times(0.0, src[-1], fps), mode) if n_samples else np.zeros(0, dtype=np.int64)


def resize_images(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, h, w, C) with OpenCV's area filter; unchanged when size is None or already right."""
    if size is None or frames.shape[1:3] == tuple(size):
        return frames
    import cv2

    h, w = size
    out = np.empty((len(frames), h, w, frames.shape[3]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        resized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = resized.reshape(h, w, -1)
    return out
