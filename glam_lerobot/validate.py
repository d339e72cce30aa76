"""Check a LeRobot v3 dataset (ours or anyone's) for what silently breaks training: `glam-lerobot validate`.

    validate(root, deep=False, chunk=16) -> Report   (report.rows: PASS / WARN / FAIL, each with episode and feature)

Cheap checks read meta/ and the parquet rows only (no video decoding), so every writer of the toolkit runs them
before it declares a dataset finished (`require_valid`):
  meta        info.json fields and version, meta/episodes readable, totals equal to the data
  episodes    rows per episode = `length`, contiguous `index` / `dataset_from_index..to_index`, frame_index 0..n-1
  timestamps  steps of 1/fps within LeRobot's tolerance (1e-4 s), starting at 0
  finite      no NaN / inf in any numeric column
  stats       meta/stats.json has finite min/max/mean/std for every feature, and min/max hold the data
              (a WARN for LeRobot's bookkeeping columns such as index, which no policy normalises)
  video span  each episode's video segment (from/to_timestamp) spans `length` frames at the video's fps
  cameras     a camera whose per-episode pixel std is ~0 is constant (a lens cap, a dead topic)
  masks       mask.* pixels are 0 or 255 (one frame per episode; every frame with --deep)
  latents     latent.action comes with latent.is_pad, set on each episode's last frame; chunk pads agree
  mixture     mixture.source / mixture.action_is_real are constant per episode and 0/1; filler actions are 0
  length      episodes shorter than a policy's action chunk (WARN: they give padded targets only)
`deep=True` also decodes every video: the decoded frame count of each episode equals its parquet rows (LeRobot's
streaming encoder can drop frames), and a camera whose frames never change within an episode is frozen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glam_lerobot import schema

TOLERANCE_S = 1e-4  # LeRobot's default timestamp tolerance (LeRobotDataset(tolerance_s=1e-4))
STATS_KEYS = ("min", "max", "mean", "std")
BOOKKEEPING = ("index", "episode_index", "frame_index", "task_index", "timestamp")  # LeRobot's own columns
CONSTANT_STD = 0.5 / 255  # per-episode pixel std below half a grey level: nothing is seen


@dataclass
class Row:
    status: str  # PASS | WARN | FAIL
    check: str
    message: str
    episode: int | None = None
    feature: str | None = None


@dataclass
class Report:
    root: Path
    rows: list[Row] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    deep: bool = False

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "FAIL"]

    @property
    def warnings(self) -> list[Row]:
        return [r for r in self.rows if r.status == "WARN"]

    def as_dict(self) -> dict:
        return {
            "root": str(self.root),
            "episodes": self.episodes,
            "frames": self.frames,
            "deep": self.deep,
            "ok": not self.failed,
            "rows": [r.__dict__ for r in self.rows],
        }

    def first_failures(self, n: int = 5) -> str:
        return "; ".join(_where(r) + r.message for r in self.failed[:n])


def _where(r: Row) -> str:
    parts = [f"episode {r.episode}" if r.episode is not None else "", r.feature or ""]
    at = ", ".join(p for p in parts if p)
    return f"[{r.check}{': ' + at if at else ''}] "


class _Checker:
    """Collects rows; a check that finds nothing wrong leaves one PASS row."""

    def __init__(self, report: Report):
        self.report = report

    def run(self, name: str, found: Iterable[Row], ok: str) -> None:
        rows = list(found)
        for r in rows:
            r.check = name
        self.report.rows += rows or [Row("PASS", name, ok)]


def _read_parquets(folder: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder}: no chunk-*/file-*.parquet")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, columns=columns))
        except Exception as exc:  # a truncated or foreign file
            raise ValueError(f"{f}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    return pa.concat_tables(tables, promote_options="default"), files


def _column(table, key: str) -> np.ndarray:
    col = table.column(key).combine_chunks()
    values = col.to_numpy(zero_copy_only=False)
    if values.dtype == object:  # fixed-size lists of a vector feature
        values = np.stack(values) if len(values) else np.zeros((0, 1))
    return np.asarray(values)


def validate(root: Path | str, *, deep: bool = False, chunk: int = 16) -> Report:
    """Run the checks on the dataset at `root` (see the module docstring). Never raises on a bad dataset: every
    problem is a FAIL row; raises only when `root` is not a dataset folder at all."""
    root = Path(root)
    report = Report(root, deep=deep)
    check = _Checker(report)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        report.rows.append(Row("FAIL", "meta", f"{info_path}: not valid JSON ({exc})"))
        return report
    missing = [k for k in ("codebase_version", "fps", "features", "total_episodes", "total_frames") if k not in info]
    version = str(info.get("codebase_version", ""))
    meta_rows = [Row("FAIL", "", f"meta/info.json lacks {', '.join(missing)}")] if missing else []
    if version and not version.startswith("v3."):
        meta_rows.append(Row("FAIL", "", f"codebase_version {version}: only LeRobot v3 datasets are checked"))
    if meta_rows:
        check.run("meta", meta_rows, "")
        return report
    features: dict = info["features"]
    fps = float(info["fps"])
    videos = [k for k, ft in features.items() if ft.get("dtype") == "video"]
    images = [k for k, ft in features.items() if ft.get("dtype") == "image"]
    numeric = [k for k, ft in features.items() if ft.get("dtype") not in ("video", "image", "string")]

    try:
        episodes, _ = _read_parquets(root / "meta" / "episodes")
        data, data_files = _read_parquets(root / "data", columns=[k for k in numeric if k != "task"] or None)
    except (FileNotFoundError, ValueError) as exc:
        check.run("meta", [Row("FAIL", "", str(exc))], "")
        return report
    ep_index = _column(episodes, "episode_index").astype(int)
    lengths = _column(episodes, "length").astype(int)
    report.episodes, report.frames = len(ep_index), data.num_rows
    cols = {k: _column(data, k) for k in data.column_names}

    # -- meta: totals
    rows = []
    if info["total_episodes"] != len(ep_index):
        rows.append(
            Row(
                "FAIL",
                "",
                f"meta/info.json: total_episodes is {info['total_episodes']} but meta/episodes lists {len(ep_index)} episodes",
            )
        )
    if info["total_frames"] != data.num_rows:
        rows.append(
            Row(
                "FAIL",
                "",
                f"meta/info.json: total_frames is {info['total_frames']} but data/ holds {data.num_rows} frames",
            )
        )
    if lengths.sum() != data.num_rows:
        rows.append(Row("FAIL", "", f"episode lengths add up to {lengths.sum()}, data/ has {data.num_rows} rows"))
    absent = [k for k in numeric if k not in cols]
    rows += [
        Row("FAIL", "", f"feature in info.json has no column in data/ ({len(data_files)} files)", None, k)
        for k in absent
    ]
    check.run("meta", rows, f"{len(ep_index)} episodes, {data.num_rows} frames, {len(features)} features")

    # -- episodes: rows, indices
    rows = []
    data_ep = cols.get("episode_index", np.zeros(0, int)).reshape(-1).astype(int)
    index = cols.get("index", np.arange(data.num_rows)).reshape(-1).astype(int)
    frame_index = cols.get("frame_index", np.zeros(0, int)).reshape(-1).astype(int)
    starts = (
        _column(episodes, "dataset_from_index").astype(int) if "dataset_from_index" in episodes.column_names else None
    )
    bounds: dict[int, np.ndarray] = {}
    for i, (ep, n) in enumerate(zip(ep_index, lengths, strict=True)):
        sel = np.flatnonzero(data_ep == ep)
        bounds[int(ep)] = sel
        if len(sel) != n:
            rows.append(Row("FAIL", "", f"{len(sel)} rows in data/ but meta/episodes says length {n}", int(ep)))
            continue
        if starts is not None and len(sel) and (index[sel[0]] != starts[i] or np.any(np.diff(index[sel]) != 1)):
            rows.append(
                Row(
                    "FAIL",
                    "",
                    f"index runs {index[sel[0]]}.. but meta/episodes starts it at {starts[i]}",
                    int(ep),
                    "index",
                )
            )
        if len(frame_index) and np.any(frame_index[sel] != np.arange(len(sel))):
            rows.append(Row("FAIL", "", "frame_index is not 0..length-1", int(ep), "frame_index"))
    extra = sorted(set(data_ep.tolist()) - set(ep_index.tolist()))
    if extra:
        rows.append(Row("FAIL", "", f"episode_index values {extra[:5]} in data/ are not in meta/episodes"))
    check.run("episodes", rows, "rows, index and frame_index agree with meta/episodes")

    # -- timestamps
    rows = []
    if "timestamp" in cols:
        ts = cols["timestamp"].reshape(-1).astype(np.float64)
        for ep, sel in bounds.items():
            if len(sel) == 0:
                continue
            t = ts[sel]
            steps = np.diff(t)
            bad = np.flatnonzero(np.abs(steps - 1 / fps) > TOLERANCE_S)
            if abs(t[0]) > TOLERANCE_S:
                rows.append(Row("FAIL", "", f"starts at {t[0]:.4f} s, not 0", ep, "timestamp"))
            if len(bad):
                j = int(bad[0])
                rows.append(
                    Row(
                        "FAIL",
                        "",
                        f"{len(bad)} step(s) off 1/fps = {1 / fps:.4f} s (first: frame {j} -> "
                        f"{j + 1}, {steps[j]:.4f} s; tolerance {TOLERANCE_S} s)",
                        ep,
                        "timestamp",
                    )
                )
    check.run("timestamps", rows, f"steps of 1/{fps:g} s within {TOLERANCE_S} s")

    # -- finite values
    rows = []
    for key, values in cols.items():
        if not np.issubdtype(values.dtype, np.floating):
            continue
        flat = values.reshape(len(values), -1)
        bad_rows = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if len(bad_rows):
            eps = sorted({int(data_ep[r]) for r in bad_rows}) if len(data_ep) else []
            rows.append(
                Row(
                    "FAIL",
                    "",
                    f"{len(bad_rows)} frame(s) with NaN or inf (episodes {eps[:5]})",
                    eps[0] if eps else None,
                    key,
                )
            )
    check.run("finite", rows, "no NaN or inf in any numeric column")

    # -- stats
    rows = []
    stats_path = root / "meta" / "stats.json"
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        stats = None
        rows.append(Row("FAIL", "", f"meta/stats.json not readable ({type(exc).__name__}: {exc})"))
    if stats is not None:
        for key in [*numeric, *videos, *images]:
            st = stats.get(key)
            if st is None or any(k not in st for k in STATS_KEYS):
                rows.append(Row("FAIL", "", "no min/max/mean/std in meta/stats.json", None, key))
                continue
            arrays = {k: np.asarray(st[k], dtype=np.float64) for k in STATS_KEYS}
            if not all(np.isfinite(a).all() for a in arrays.values()):
                rows.append(
                    Row("FAIL", "", "meta/stats.json holds NaN or inf (normalisation would poison training)", None, key)
                )
                continue
            if key in cols and np.issubdtype(cols[key].dtype, np.number) and len(cols[key]):
                v = cols[key].reshape(len(cols[key]), -1).astype(np.float64)
                lo, hi = arrays["min"].reshape(-1), arrays["max"].reshape(-1)
                if lo.shape == v.shape[1:] and np.isfinite(v).all():
                    slack = 1e-4 * np.maximum(1.0, np.abs(hi - lo))
                    if np.any(v.min(axis=0) < lo - slack) or np.any(v.max(axis=0) > hi + slack):
                        rows.append(_stale_stats(key))
    check.run("stats", rows, "present, finite and covering the data for every feature")

    # -- video span (cheap: meta/episodes' timestamps), constant cameras (per-episode stats)
    rows, cam_rows = [], []
    names = set(episodes.column_names)
    for key in videos:
        a, b = f"videos/{key}/from_timestamp", f"videos/{key}/to_timestamp"
        if a not in names or b not in names:
            rows.append(Row("FAIL", "", "meta/episodes has no from/to_timestamp for this video", None, key))
            continue
        v_fps = float(features[key].get("info", {}).get("video.fps", fps))
        span = (_column(episodes, b) - _column(episodes, a)) * v_fps
        for ep, n, frames in zip(ep_index, lengths, span, strict=True):
            if abs(frames - n) > 0.5:
                rows.append(Row("FAIL", "", f"video segment spans {frames:.1f} frames for {n} rows", int(ep), key))
        std_col = f"stats/{key}/std"
        if std_col in names:
            stds = _column(episodes, std_col).reshape(len(ep_index), -1)
            for ep, s in zip(ep_index, stds, strict=True):
                if np.all(s < CONSTANT_STD):
                    cam_rows.append(
                        Row("WARN", "", "constant image over the whole episode (covered or dead camera)", int(ep), key)
                    )
    check.run("video span", rows, f"{len(videos)} video(s): every segment spans its episode")
    check.run("cameras", cam_rows, "no camera is constant over an episode")

    # -- masks
    masks = [k for k in images if k.startswith("mask.")]
    if masks:
        check.run("masks", _mask_rows(root, data_files, masks, bounds, deep), f"{len(masks)} mask column(s) binary")

    # -- latents
    if schema.LATENT in features:
        check.run("latents", _latent_rows(cols, features, bounds), "latent.action complete, pads on episode ends")

    # -- mixture
    if schema.SOURCE in features or schema.ACTION_IS_REAL in features:
        check.run("mixture", _mixture_rows(cols, features, bounds), "source and action_is_real constant per episode")

    # -- short episodes
    short = [
        Row("WARN", "", f"{n} frames, shorter than a {chunk}-step action chunk", int(ep))
        for ep, n in zip(ep_index, lengths, strict=True)
        if n < chunk
    ]
    check.run("length", short, f"every episode has at least {chunk} frames")

    if deep and videos:
        frames_rows, frozen = _decode_rows(root, info, episodes, ep_index, lengths, videos)
        check.run("video frames", frames_rows, "decoded frames = parquet rows for every episode and camera")
        check.run("frozen", frozen, "every camera changes within each episode")
    return report


def _stale_stats(key: str) -> Row:
    if key in BOOKKEEPING:  # never normalised; LeRobot 0.6.1's aggregate_datasets leaves these stale itself
        return Row("WARN", "", "stats.json does not cover the data (not used for normalisation)", None, key)
    return Row("FAIL", "", "data outside the stats' [min, max]: stats.json is stale", None, key)


def _mask_rows(root: Path, data_files: list[Path], masks: list[str], bounds: dict, deep: bool) -> list[Row]:
    """Decode mask frames (each episode's first, or with `deep` all) one data file at a time; report the first
    frame per episode and mask whose pixels are not 0/255."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    wanted = {int(r): (ep, int(r - sel[0])) for ep, sel in bounds.items() for r in (sel if deep else sel[:1])}
    bad: dict[tuple[int, str], Row] = {}
    offset = 0
    for f in data_files:
        table = pq.read_table(f, columns=masks)
        for key in masks:
            col = table.column(key)
            for r in range(offset, offset + table.num_rows):
                if r not in wanted or (wanted[r][0], key) in bad:
                    continue
                ep, frame = wanted[r]
                item = col[r - offset].as_py()
                raw = item.get("bytes") if isinstance(item, dict) else None
                if raw is None and isinstance(item, dict) and item.get("path"):
                    raw = (root / item["path"]).read_bytes()
                if raw is None:
                    bad[ep, key] = Row("FAIL", "", f"frame {frame}: no image bytes", ep, key)
                    continue
                odd = np.setdiff1d(np.unique(np.asarray(Image.open(io.BytesIO(raw)))), [0, 255])
                if len(odd):
                    message = (
                        f"frame {frame}: values {odd[:4].tolist()} besides 0/255 (a lossy codec or a resize blurred it)"
                    )
                    bad[ep, key] = Row("FAIL", "", message, ep, key)
        offset += table.num_rows
    return list(bad.values())


def _latent_rows(cols: dict, features: dict, bounds: dict) -> list[Row]:
    rows = []
    if schema.LATENT_IS_PAD not in cols:
        return [
            Row(
                "FAIL",
                "",
                "latent.action without latent.is_pad: the last frame of each episode has no "
                "next frame, so its latent must be marked",
                None,
                schema.LATENT_IS_PAD,
            )
        ]
    pad = cols[schema.LATENT_IS_PAD].reshape(-1)
    chunk_pad = cols.get(schema.LATENT_CHUNK_IS_PAD)
    if schema.LATENT_CHUNK in features and chunk_pad is None:
        rows.append(Row("FAIL", "", "latent.chunk without latent.chunk_is_pad", None, schema.LATENT_CHUNK_IS_PAD))
    for ep, sel in bounds.items():
        if not len(sel):
            continue
        want = np.zeros(len(sel))
        want[-1] = 1.0
        if len(sel) == 1:
            want[:] = 1.0
        if np.any(pad[sel] != want):
            rows.append(
                Row(
                    "FAIL",
                    "",
                    "latent.is_pad must be 1 on the episode's last frame and 0 elsewhere",
                    ep,
                    schema.LATENT_IS_PAD,
                )
            )
        if chunk_pad is not None:
            h = chunk_pad.shape[1]
            t = np.arange(len(sel))[:, None] + np.arange(h)[None, :]
            if np.any(chunk_pad[sel] != (t >= len(sel) - 1)):
                rows.append(
                    Row(
                        "FAIL",
                        "",
                        "latent.chunk_is_pad does not mark the positions past the episode end",
                        ep,
                        schema.LATENT_CHUNK_IS_PAD,
                    )
                )
    return rows


def _mixture_rows(cols: dict, features: dict, bounds: dict) -> list[Row]:
    rows = []
    for key in (schema.SOURCE, schema.ACTION_IS_REAL):
        if key not in cols:
            rows.append(
                Row("FAIL", "", f"mixture datasets carry both {schema.SOURCE} and {schema.ACTION_IS_REAL}", None, key)
            )
    if rows:
        return rows
    source = cols[schema.SOURCE].reshape(-1)
    real = cols[schema.ACTION_IS_REAL].reshape(-1)
    action = cols.get(schema.ACTION)
    if not np.isin(real, (0.0, 1.0)).all():
        rows.append(Row("FAIL", "", "values other than 0 and 1", None, schema.ACTION_IS_REAL))
    for ep, sel in bounds.items():
        if len(sel) and (np.ptp(source[sel]) != 0 or np.ptp(real[sel]) != 0):
            rows.append(Row("FAIL", "", "source or action_is_real changes within the episode", ep))
        elif len(sel) and real[sel[0]] == 0 and action is not None and np.any(action[sel] != 0):
            rows.append(
                Row("FAIL", "", "action_is_real is 0 but the actions are not the zero filler", ep, schema.ACTION)
            )
    return rows


def _decode_rows(root: Path, info: dict, episodes, ep_index, lengths, videos) -> tuple[list[Row], list[Row]]:
    """Decode each video file once, streaming: per episode (its [from, to) timestamps), count the frames and keep
    only its first frame and whether any later one differs, so memory does not grow with the file."""
    import av

    rows, frozen = [], []
    template = info.get("video_path", "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    for key in videos:
        cols = {c: _column(episodes, f"videos/{key}/{c}") for c in ("chunk_index", "file_index")}
        t0, t1 = (_column(episodes, f"videos/{key}/{c}") for c in ("from_timestamp", "to_timestamp"))
        files: dict[tuple[int, int], list[int]] = {}  # file -> rows of meta/episodes it holds
        for i in range(len(ep_index)):
            files.setdefault((int(cols["chunk_index"][i]), int(cols["file_index"][i])), []).append(i)
        for (chunk, file), members in files.items():
            path = root / template.format(video_key=key, chunk_index=chunk, file_index=file)
            members.sort(key=lambda m: t0[m])
            starts = np.asarray([t0[m] for m in members]) - 1e-6
            count = dict.fromkeys(members, 0)
            first: dict[int, np.ndarray] = {}
            changed = dict.fromkeys(members, False)
            try:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    for frame in container.decode(stream):
                        t = float(frame.pts * stream.time_base)
                        k = int(np.searchsorted(starts, t, side="right")) - 1  # the episode starting last before t
                        if k < 0 or t >= t1[members[k]] - 1e-6:
                            continue  # between episodes' segments
                        i = members[k]
                        count[i] += 1
                        pic = frame.to_ndarray(format="gray").astype(np.int16)
                        if i not in first:
                            first[i] = pic
                        elif not changed[i] and np.abs(pic - first[i]).max() > 1:
                            changed[i] = True
            except Exception as exc:  # missing, truncated or undecodable file
                ep = int(ep_index[members[0]])
                rows.append(Row("FAIL", "", f"{path}: cannot decode ({type(exc).__name__}: {exc})", ep, key))
                continue
            for i in members:
                ep = int(ep_index[i])
                if count[i] != lengths[i]:
                    rows.append(Row("FAIL", "", f"{count[i]} decoded frames for {lengths[i]} rows", ep, key))
                if count[i] > 1 and not changed[i]:
                    frozen.append(Row("WARN", "", f"all {count[i]} frames identical (frozen camera)", ep, key))
    return rows, frozen


def require_valid(root: Path | str, what: str = "dataset") -> Report:
    """The cheap checks, as a writer runs them before declaring a dataset finished: FAIL rows raise."""
    report = validate(root)
    if report.failed:
        raise RuntimeError(
            f"{what} at {root} failed validation ({len(report.failed)} problem(s)): {report.first_failures()}"
        )
    return report


def lines(report: Report) -> list[str]:
    """Plain-text summary lines (the CLI prints a table)."""
    counts = {s: sum(r.status == s for r in report.rows) for s in ("PASS", "WARN", "FAIL")}
    verdict = "FAIL" if counts["FAIL"] else "ok"
    return [
        f"{report.root}: {report.episodes} episodes, {report.frames} frames: {verdict} "
        f"({counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failures"
        f"{', decoded every video' if report.deep else ''})"
    ]
