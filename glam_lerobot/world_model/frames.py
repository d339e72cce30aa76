"""The decoded-frame cache: every camera stream of a dataset revision decoded once into a uint8 array on disk.

Training a world model visits every frame many times; decoding AV1 for each visit would make training bound by
the video decoder. Each (dataset revision, column) is decoded once, sequentially (one pass over each video file,
which is far faster than seeking per frame), into `<cache>/<fingerprint>/<column>.npy`, and memory-mapped by
every later epoch, run, relabel and transfer. The fingerprint hashes the dataset's meta files and the names and
sizes of its data and video files, so a new revision (or a rewritten dataset) gets its own entry and a stale
entry is never read. Writing goes to a temporary file renamed on completion: an interrupted decode leaves no
entry behind.

Rows are in the dataset's global `index` order, so row i is frame i of `LeRobotDataset(root)[i]`.
Masks (lossless image columns in the parquet files) are cached the same way as (N, H, W, 1) arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from glam_lerobot import schema


def cache_dir() -> Path:
    """$GLAM_LEROBOT_CACHE, else ~/.cache/glam-lerobot (never inside a dataset: datasets stay byte-identical)."""
    return Path(os.environ.get("GLAM_LEROBOT_CACHE", Path.home() / ".cache" / "glam-lerobot")) / "frames"


def fingerprint(root: Path) -> str:
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted((root / "meta").rglob("*")):
        if p.is_file() and p.name != "README.md":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    for sub in ("data", "videos"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(root)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:20]


def read_info(root: Path) -> dict:
    return json.loads((Path(root) / "meta" / "info.json").read_text())


def read_episodes(root: Path):
    """meta/episodes as one pandas frame sorted by episode_index."""
    import pyarrow as pa

    files = sorted((Path(root) / "meta" / "episodes").rglob("*.parquet"))
    df = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pandas()
    return df.sort_values("episode_index").reset_index(drop=True)


def data_files(root: Path) -> list[Path]:
    return sorted((Path(root) / "data").rglob("*.parquet"))


def read_numeric(root: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """Numeric columns of every frame, in global index order: 1-D features -> (N, D) arrays."""
    import pyarrow as pa

    wanted = ["index", *[c for c in columns if c != "index"]]
    table = pa.concat_tables([pq.read_table(f, columns=wanted) for f in data_files(root)])
    order = np.argsort(table.column("index").to_numpy())
    out = {}
    for c in columns:
        col = table.column(c).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
            arr = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
        else:
            arr = col.to_numpy(zero_copy_only=False)
        out[c] = np.ascontiguousarray(arr[order])
    return out


def cached_frames(root: Path, key: str, *, progress: bool = True) -> np.ndarray:
    """(N, H, W, C) uint8 memmap of column `key` (a video or image feature) for every frame of `root`."""
    root = Path(root)
    info = read_info(root)
    if key not in info["features"]:
        raise KeyError(f"{root}: no column {key!r} (has {sorted(info['features'])})")
    path = cache_dir() / fingerprint(root) / f"{key}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        feat = info["features"][key]
        h, w, c = feat["shape"]
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(info["total_frames"], h, w, c))
        try:
            if feat["dtype"] == "video":
                _decode_video_column(root, info, key, out, progress)
            elif feat["dtype"] == "image":
                _decode_image_column(root, key, out, progress)
            else:
                raise ValueError(f"{root}: column {key!r} is {feat['dtype']}, not an image or video")
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return np.load(path, mmap_mode="r")


def _decode_video_column(root: Path, info: dict, key: str, out: np.ndarray, progress: bool) -> None:
    import av
    from tqdm import tqdm

    fps = info["fps"]
    episodes = read_episodes(root)
    starts = np.concatenate([[0], np.cumsum(episodes["length"].to_numpy())[:-1]])
    by_file: dict[tuple[int, int], list[int]] = {}
    for i, row in episodes.iterrows():
        by_file.setdefault((int(row[f"videos/{key}/chunk_index"]), int(row[f"videos/{key}/file_index"])), []).append(i)
    bar = tqdm(total=len(out), desc=f"decode {key}", unit="frame", disable=not progress, leave=False)
    for (chunk, file), rows in by_file.items():
        video = root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames, times = [], []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * stream.time_base))
        times = np.asarray(times)
        frames = np.stack(frames)
        for i in rows:
            ep = episodes.iloc[i]
            want = float(ep[f"videos/{key}/from_timestamp"]) + np.arange(int(ep["length"])) / fps
            nearest = np.abs(times[None, :] - want[:, None]).argmin(1)
            if np.abs(times[nearest] - want).max() > 0.5 / fps:
                raise ValueError(
                    f"{video}: episode {int(ep['episode_index'])}, column {key}: frames missing from the video"
                )
            out[starts[i] : starts[i] + len(want)] = frames[nearest]
            bar.update(len(want))
    bar.close()


def _decode_image_column(root: Path, key: str, out: np.ndarray, progress: bool) -> None:
    import io

    from PIL import Image
    from tqdm import tqdm

    bar = tqdm(total=len(out), desc=f"decode {key}", unit="frame", disable=not progress, leave=False)
    for f in data_files(root):
        table = pq.read_table(f, columns=["index", key])
        index = table.column("index").to_numpy()
        cells = table.column(key).to_pylist()
        for i, cell in zip(index, cells, strict=True):
            img = np.asarray(Image.open(io.BytesIO(cell["bytes"])))
            out[i] = img.reshape(out.shape[1:])
            bar.update(1)
    bar.close()


def camera_columns(info: dict, input_kind: str, renames: dict[str, str] | None) -> dict[str, str]:
    """{canonical camera: column in this dataset}, applying a mixture's camera renames (source -> canonical)."""
    inverse = {canon: src for src, canon in (renames or {}).items()}
    key = schema.image_key if input_kind == "rgb" else schema.mask_key
    return {cam: key(inverse.get(cam, cam)) for cam in schema.CAMERAS if key(inverse.get(cam, cam)) in info["features"]}
