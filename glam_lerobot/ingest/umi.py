"""UMI replay buffers (`dataset.zarr.zip`) -> episodes in the canonical schema.

The buffer is diffusion_policy's ReplayBuffer saved as a zarr v2 ZipStore (or a plain .zarr directory):
`data/camera{i}_rgb` (N, H, W, 3) uint8 compressed with imagecodecs' JpegXL, `data/robot{i}_eef_pos` (N, 3),
`data/robot{i}_eef_rot_axis_angle` (N, 3), `data/robot{i}_gripper_width` (N, 1) in metres (0 = closed), all
concatenated over episodes, and `meta/episode_ends` (cumulative end indices). Frames come at the GoPro's 59.94 fps
and are put on the dataset's fps grid by picking the nearest recorded frame (no interpolation, so pose and image of
a dataset frame are one recorded instant). UMI has no robot, so there are no `observation.state` / `action`
columns: only the cameras and `observation.ee_pose` per gripper (position, rotation 6D, width).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import schema
from glam_lerobot.ingest import IngestPlan, parse_camera_map, validate
from glam_lerobot.ingest.resample import resample_uniform, resize_images
from glam_lerobot.rotations import ee_pose, rotvec_to_6d
from glam_lerobot.writing import EpisodeError

UMI_FPS = 59.94
DEFAULT_CAMERA_MAP = {"camera0": "front", "camera1": "overhead"}
LOWDIM = {"eef_pos": 3, "eef_rot_axis_angle": 3, "gripper_width": 1}


def register_codecs() -> None:
    """UMI's frames need the `imagecodecs_jpegxl` codec in numcodecs' registry (once per process)."""
    from imagecodecs.numcodecs import register_codecs as register

    register(verbose=False)


def open_buffer(path: Path | str):
    """The replay buffer's root zarr group, read-only: a .zip is opened as a ZipStore, a directory as itself."""
    import zarr

    register_codecs()
    path = Path(path)
    if not path.exists():
        raise EpisodeError(path, None, "<file>", "no such file or directory")
    try:
        store = zarr.ZipStore(str(path), mode="r") if path.is_file() else zarr.DirectoryStore(str(path))
        return zarr.open_group(store, mode="r")
    except Exception as exc:  # zipfile.BadZipFile for a truncated zip, zarr errors for a non-buffer
        raise EpisodeError(
            path, None, "<file>", f"not a readable zarr replay buffer ({type(exc).__name__}: {exc})"
        ) from exc


def inspect(path: Path | str) -> dict[str, Any]:
    """What a buffer holds: robots, cameras, frame count, image size and episode boundaries (checked)."""
    root = open_buffer(path)
    if "data" not in root or "meta" not in root or "episode_ends" not in root["meta"]:
        raise EpisodeError(
            path, None, "meta/episode_ends", "missing: not a UMI replay buffer (data/, meta/episode_ends)"
        )
    data = root["data"]
    keys = set(data.array_keys())
    robots = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"robot(\d+)_eef_pos", k)))
    cameras = sorted(k[: -len("_rgb")] for k in keys if re.fullmatch(r"camera\d+_rgb", k))
    if not robots:
        raise EpisodeError(path, None, "data/robot0_eef_pos", "missing: the buffer has no robot{i}_eef_pos array")
    for r in robots:
        for name in LOWDIM:
            if f"robot{r}_{name}" not in keys:
                raise EpisodeError(path, None, f"data/robot{r}_{name}", "missing")
    ends = np.asarray(root["meta"]["episode_ends"][:], dtype=np.int64)
    lengths = {f"data/{k}": data[k].shape[0] for k in sorted(keys) if k.startswith(("robot", "camera"))}
    n = validate.same_length(lengths, path, "all")
    if len(ends) == 0 or ends[-1] != n or np.any(np.diff(np.concatenate([[0], ends])) <= 0):
        raise EpisodeError(
            path,
            "all",
            "meta/episode_ends",
            f"must be increasing cumulative ends finishing at the {n} frames of data/, got {ends.tolist()[:10]}...",
        )
    hw = {c: tuple(data[f"{c}_rgb"].shape[1:3]) for c in cameras}
    _close(root)
    return {"robots": robots, "cameras": cameras, "frames": n, "episode_ends": ends.tolist(), "image_hw": hw}


def plan(
    paths: list[Path | str],
    *,
    fps: int = schema.DEFAULT_FPS,
    source_fps: float = UMI_FPS,
    camera_map: dict[str, str] | str | None = None,
    image_size: tuple[int, int] | None = None,
    task: str = "UMI demonstration",
    check_all_frames: bool = False,
) -> IngestPlan:
    """One job per episode of every buffer; the buffers must agree on robots, mapped cameras and image size.

    The frames the dataset uses are decoded, so damage there is an error. `check_all_frames` also decodes the
    frames the fps grid skips (5 of 6 at 59.94 -> 10 fps, so ingest decodes 6x more) and reports damage there as
    warnings in the summary and meta/glam.json, without failing."""
    from glam_lerobot import provenance

    paths = [Path(p) for p in paths]
    cmap = parse_camera_map(camera_map) if camera_map is not None else dict(DEFAULT_CAMERA_MAP)
    jobs, layout = [], None
    for path in paths:
        info = inspect(path)
        cams = {c: cmap[c] for c in info["cameras"] if c in cmap}
        if not cams:
            raise EpisodeError(path, None, "--camera-map", f"maps none of the buffer's cameras {info['cameras']}")
        sizes = {tuple(image_size) if image_size else info["image_hw"][c] for c in cams}
        if len(sizes) > 1:
            raise EpisodeError(path, None, "camera*_rgb", f"cameras differ in size {sizes}: pass --image-size HxW")
        this = {"robots": info["robots"], "cameras": cams, "image_hw": sizes.pop()}
        if layout is None:
            layout = this
        elif this != layout:
            raise EpisodeError(path, None, "data/", f"layout {this} differs from the first buffer's {layout}")
        starts = [0, *info["episode_ends"][:-1]]
        problems = _check_episodes(path, info, list(cams))
        for e, (a, b) in enumerate(zip(starts, info["episode_ends"], strict=True)):
            jobs.append(
                {
                    "bad": problems.get(e),
                    "file": str(path),
                    "episode": e,
                    "start": a,
                    "end": b,
                    "robots": info["robots"],
                    "cameras": cams,
                    "fps": fps,
                    "source_fps": source_fps,
                    "image_hw": list(layout["image_hw"]),
                    "task": task,
                    "resize": list(image_size) if image_size else None,
                    "check_all": check_all_frames,
                }
            )
    arms = len(layout["robots"])
    features = schema.features(
        arms=arms, image_size=layout["image_hw"], cameras=tuple(layout["cameras"].values()), robot=False
    )
    meta = {
        "embodiment": "umi",
        "arms": arms,
        "task": task,
        "source": {
            "format": "umi-replay-buffer",
            "files": provenance.file_records(_files_of(paths)),
            "mapping": {
                "camera_map": layout["cameras"],
                "source_fps": source_fps,
                "fps": fps,
                "sync": "nearest recorded frame, no interpolation",
                "ee_pose": "robot{i}_eef_pos, robot{i}_eef_rot_axis_angle -> 6D, robot{i}_gripper_width (m, 0 = closed)",
                "image_size": list(layout["image_hw"]),
            },
        },
    }
    notes = []
    if not check_all_frames:  # said, not silent: damage there would go unnoticed
        total = sum(j["end"] - j["start"] for j in jobs)
        used = sum(len(resample_uniform(j["end"] - j["start"], source_fps, fps)) for j in jobs)
        meta["source"]["frames_not_decoded"] = total - used
        if total > used:
            notes.append(
                f"{total - used} of the buffers' {total} camera frames are skipped by the {fps} fps grid and were "
                "not decoded; --check-all-frames decodes them too and reports any damage"
            )
    return IngestPlan(
        fps=fps, features=features, jobs=jobs, produce=produce, glam_meta=meta, robot_type="umi", notes=notes
    )


def _files_of(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


DECODE_THREADS = 2  # JpegXL decoding releases the GIL: frames decode in parallel while the writer encodes


def _whole_frames(arr) -> bool:
    """One frame per chunk, as UMI stores its cameras."""
    return arr.chunks[0] == 1 and tuple(arr.chunks[1:]) == tuple(arr.shape[1:]) and not arr.filters


def _decode_each(arr, rows) -> list:
    """Frame by frame, on a small thread pool (most of an ingest's time): each row's (1, H, W, C) array, or the
    exception its chunk raised. Whole-frame chunks are read raw (zarr's ZipStore serialises the reads) and decoded
    with the array's codec; other layouts go through zarr."""
    from concurrent.futures import ThreadPoolExecutor

    sep = getattr(arr, "_dimension_separator", None) or "."
    tail = sep + sep.join(["0"] * (arr.ndim - 1)) if arr.ndim > 1 else ""
    raw = _whole_frames(arr) and arr.compressor is not None

    def one(i: int):
        try:
            if raw:
                frame = np.asarray(arr.compressor.decode(arr.store[f"{arr.path}/{i}{tail}"]))
                return frame.reshape(1, *arr.chunks[1:]).astype(arr.dtype, copy=False)
            return np.asarray(arr[i : i + 1])
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        return list(pool.map(one, [int(i) for i in rows]))


def _decode_frames(arr, idx: np.ndarray) -> np.ndarray:
    """The frames `idx` of an image array, decoding only their chunks (the first bad chunk raises)."""
    if not _whole_frames(arr):  # several frames per chunk: zarr decodes each chunk once
        return np.asarray(arr.get_orthogonal_selection((idx,)))
    frames = _decode_each(arr, idx)
    if errors := [f for f in frames if isinstance(f, Exception)]:
        raise errors[0]
    return np.concatenate(frames)


def _check_chunks(arr, start: int, end: int, file: str, episode: int, field: str) -> None:
    """zarr silently returns the fill value for a missing chunk; a buffer missing frames is an error instead."""
    store, rows = arr.store, arr.chunks[0]
    sep = getattr(arr, "_dimension_separator", None) or "."
    tail = sep.join(["0"] * (arr.ndim - 1))
    for c in range(start // rows, (end - 1) // rows + 1):
        key = f"{arr.path}/{c}{sep + tail if tail else ''}"
        if key not in store:
            raise EpisodeError(
                file, episode, field, f"chunk {key!r} (frames {c * rows}..) is missing: truncated buffer?"
            )


def _check_episodes(path: Path, info: dict, cameras: list[str]) -> dict[int, tuple[str, str]]:
    """Cheap checks of every episode before anything is written: low-dim values finite, no chunk missing.

    Returns {episode: (field, message)} for the bad ones (the low-dim arrays are small: read them whole)."""
    root = open_buffer(path)
    data, problems = root["data"], {}
    ends = info["episode_ends"]
    arrays = {f"robot{r}_{n}": None for r in info["robots"] for n in LOWDIM}
    for name in arrays:
        arrays[name] = np.asarray(data[name][:], dtype=np.float64)
    for e, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
        try:
            for name, values in arrays.items():
                validate.width(values.reshape(len(values), -1), LOWDIM[name.split("_", 1)[1]], path, e, f"data/{name}")
                _check_chunks(data[name], a, b, str(path), e, f"data/{name}")
                validate.finite(values[a:b], path, e, f"data/{name}")
            for cam in cameras:
                _check_chunks(data[f"{cam}_rgb"], a, b, str(path), e, f"data/{cam}_rgb")
        except EpisodeError as exc:
            problems[e] = validate.as_problem(exc)
    _close(root)
    return problems


def _close(root) -> None:
    close = getattr(root.store, "close", None)
    if close is not None:
        close()


@functools.lru_cache(maxsize=4)
def _open_cached(path: str, stamp: tuple):
    """A worker reads many episodes of one buffer: open its zip (central directory: one entry per frame) once.
    `stamp` (mtime, size) makes a rewritten file open afresh."""
    return open_buffer(path)


def produce(job: dict) -> dict:
    """Read one episode, pick the frames on the fps grid, and return the canonical columns."""
    validate.bad_job(job)
    st = Path(job["file"]).stat()
    return _produce(job, _open_cached(job["file"], (st.st_mtime_ns, st.st_size))["data"])


def _produce(job: dict, data) -> dict:
    file, episode, a, b = job["file"], job["episode"], job["start"], job["end"]
    idx = a + resample_uniform(b - a, job["source_fps"], job["fps"])
    frames: dict[str, np.ndarray] = {}
    poses, warnings = [], []
    for r in job["robots"]:
        parts = {}
        for name, width in LOWDIM.items():
            field = f"data/robot{r}_{name}"
            arr = data[f"robot{r}_{name}"]
            _check_chunks(arr, a, b, file, episode, field)
            values = np.asarray(arr[a:b], dtype=np.float64).reshape(b - a, -1)
            validate.width(values, width, file, episode, field)
            validate.finite(values, file, episode, field)
            parts[name] = values[idx - a]
        poses.append(ee_pose(parts["eef_pos"], rotvec_to_6d(parts["eef_rot_axis_angle"]), parts["gripper_width"]))
    frames[schema.EE_POSE] = np.concatenate(poses, axis=1)
    for cam, target in job["cameras"].items():
        field = f"data/{cam}_rgb"
        arr = data[f"{cam}_rgb"]
        _check_chunks(arr, a, b, file, episode, field)
        try:
            images = _decode_frames(arr, idx)
        except Exception as exc:
            raise EpisodeError(file, episode, field, f"cannot decode frames ({type(exc).__name__}: {exc})") from exc
        if job.get("check_all"):
            warnings += _check_skipped_frames(arr, sorted(set(range(a, b)) - set(idx.tolist())), field)
        images = resize_images(np.asarray(images), tuple(job["resize"]) if job["resize"] else None)
        frames[schema.image_key(target)] = validate.image_size(images, tuple(job["image_hw"]), file, episode, field)
    return {"task": job["task"], "frames": frames, "warnings": warnings}


def _check_skipped_frames(arr, rows: list[int], field: str) -> list[str]:
    """Decode the frames the dataset does not use; a sentence per array naming the ones that do not decode."""
    damaged = [
        f"{i} ({type(f).__name__}: {f})"
        for i, f in zip(rows, _decode_each(arr, rows), strict=True)
        if isinstance(f, Exception)
    ]
    if not damaged:
        return []
    return [
        f"{field}: {len(damaged)} of the {len(rows)} frames the fps grid skips do not decode (not used in the "
        f"dataset): source frame {', '.join(damaged[:5])}" + (" ..." if len(damaged) > 5 else "")
    ]
