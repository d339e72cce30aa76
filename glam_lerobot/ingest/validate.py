"""Checks on raw recordings, in the recordings' own terms (the file, the episode, the source field's name).

The writer checks the canonical columns again; these checks run first so a user reads "robot0_eef_pos" or
"/joint_states" in the error, not a column name they never wrote. Every check raises `EpisodeError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glam_lerobot.ingest.resample import first_decrease
from glam_lerobot.writing import EpisodeError


def finite(values: np.ndarray, file: Any, episode: Any, field: str) -> np.ndarray:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        t = int(np.argwhere((~np.isfinite(arr.reshape(len(arr), -1))).any(1))[0, 0])
        raise EpisodeError(file, episode, field, f"NaN or infinite value at sample {t}")
    return arr


def monotonic(times: np.ndarray, file: Any, episode: Any, field: str) -> np.ndarray:
    i = first_decrease(times)
    if i is not None:
        raise EpisodeError(
            file, episode, field, f"timestamps go back in time at sample {i} ({times[i - 1]:.6f} s -> {times[i]:.6f} s)"
        )
    return times


GAP_PERIODS = 5  # a silence longer than this many of the stream's own median periods is a gap


def continuity(
    stamps_ns: np.ndarray,
    log_ns: np.ndarray | None,
    file: Any,
    episode: Any,
    field: str,
    max_gap: float | None = None,
    allow_gaps: bool = False,
) -> list[tuple[int, int]]:
    """Refuse a stream that stalls (no sample for longer than max_gap seconds, default GAP_PERIODS median periods)
    or whose clock jumps (the stamps leap while the bag's receive times run on): resampled onto the fps grid,
    either puts frames seconds away from the state they are paired with.

    With allow_gaps a stall is returned instead, as (last stamp before, first stamp after) in ns, for the caller
    to cut the episode there; a clock jump is always refused (every later sample would be out of sync)."""
    t = np.asarray(stamps_ns, dtype=np.int64)
    if len(t) < 3:
        return []
    dt = np.diff(t) / 1e9
    period = float(np.median(dt))
    limit = max_gap if max_gap is not None else GAP_PERIODS * max(period, 1e-3)
    gaps = []
    for i in np.flatnonzero(dt > limit)[np.argsort(-dt[dt > limit], kind="stable")]:  # the longest first
        at = (t[i] - t[0]) / 1e9
        if log_ns is not None and len(log_ns) == len(t):
            received = (int(log_ns[i + 1]) - int(log_ns[i])) / 1e9
            if received <= limit:  # the bag kept receiving at the usual pace: the message clock jumped
                raise EpisodeError(
                    file,
                    episode,
                    field,
                    f"clock jump of {dt[i] - received:+.2f} s at {at:.2f} s (message "
                    f"stamps leap {dt[i]:.2f} s while the bag received the next message {received:.3f} s "
                    "later); fix the publisher's clock, or ingest with `time: bag` in the mapping",
                )
        if not allow_gaps:
            raise EpisodeError(
                file,
                episode,
                field,
                f"gap of {dt[i]:.2f} s without messages at {at:.2f} s (median period "
                f"{period * 1000:.0f} ms, limit {limit:.2f} s: --max-gap sets it, --split-at-gaps cuts the bag "
                "there)",
            )
        gaps.append((int(t[i]), int(t[i + 1])))
    return sorted(gaps)


def same_length(lengths: dict[str, int], file: Any, episode: Any) -> int:
    if len(set(lengths.values())) > 1:
        ref = max(set(lengths.values()), key=list(lengths.values()).count)
        odd = next(k for k, n in lengths.items() if n != ref)
        raise EpisodeError(file, episode, odd, f"has {lengths[odd]} samples where the others have {ref}: {lengths}")
    return next(iter(lengths.values()))


def width(values: np.ndarray, expected: int, file: Any, episode: Any, field: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[1] != expected:
        raise EpisodeError(file, episode, field, f"shape {arr.shape}, expected (T, {expected})")
    return arr


def image_size(frames: np.ndarray, expected_hw: tuple[int, int], file: Any, episode: Any, field: str) -> np.ndarray:
    """(T, H, W, 3) uint8 of the size every other episode of the dataset has."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[3] != 3:
        raise EpisodeError(file, episode, field, f"expected RGB frames (T, H, W, 3), got shape {arr.shape}")
    if tuple(arr.shape[1:3]) != tuple(expected_hw):
        raise EpisodeError(
            file,
            episode,
            field,
            f"frames are {arr.shape[1]}x{arr.shape[2]} but the dataset's are {expected_hw[0]}x{expected_hw[1]} "
            "(pass --image-size HxW to resize every source to one size)",
        )
    if arr.dtype != np.uint8:
        raise EpisodeError(file, episode, field, f"frames must be uint8, got {arr.dtype}")
    return arr


def as_problem(exc: EpisodeError) -> tuple[str, str]:
    """(field, message) of an error, to keep in a job planned as bad."""
    return exc.field, str(exc).split(f"field '{exc.field}': ", 1)[-1]


def bad_job(job: dict) -> None:
    """Jobs found bad while planning carry their error; producing them raises it, so --skip-bad lists them."""
    if job.get("bad"):
        raise EpisodeError(job["file"], job["episode"], job["bad"][0], job["bad"][1])
