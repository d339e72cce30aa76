"""Derived revisions: a dataset plus new columns, as a new dataset folder that records its parent.

Masks and latent actions are never written into the dataset they are computed from. Each is a new revision: a new
local root (by default `<parent>@<revision>` beside the parent): the parent's files copied byte for byte (videos,
metadata), its data files rewritten with the new columns appended, with statistics for the new columns, provenance
in meta/glam.json and a dataset card. The parent is only read, so it stays byte-identical; `glam-lerobot push` then
sends the revision to its own branch and tag on the Hub.

The data files are written with pyarrow rather than LeRobot's `dataset_tools.add_features`, which builds the same
files through pandas and a `datasets.Dataset` per file (9.4 of relabel's 37 s here, for two 700-frame datasets: issue
18); tests/test_revisions.py checks that both give the same tables.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from glam_lerobot import provenance


def default_root(parent_root: Path, revision: str) -> Path:
    return parent_root.with_name(f"{parent_root.name}@{revision}")


def column_stats(values: np.ndarray, feature: dict) -> dict[str, np.ndarray]:
    """LeRobot-shaped statistics for a whole new column (images: per channel in [0, 1], like LeRobot's own)."""
    from lerobot.datasets.compute_stats import get_feature_stats

    if feature["dtype"] in ("image", "video"):
        # LeRobot's own image recipe: a sample of frames, downsampled, per channel, divided by 255 -> (C, 1, 1)
        from lerobot.datasets.compute_stats import auto_downsample_height_width, sample_indices

        imgs = np.stack(
            [auto_downsample_height_width(np.moveaxis(values[i], -1, 0)) for i in sample_indices(len(values))]
        )
        stats = get_feature_stats(imgs, axis=(0, 2, 3), keepdims=True)
        return {k: v if k == "count" else np.squeeze(v / 255.0, axis=0) for k, v in stats.items()}
    arr = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return get_feature_stats(arr, axis=0, keepdims=arr.ndim == 1)


def _write_episode_stats(root: Path, columns: dict[str, tuple[np.ndarray, dict]]) -> dict[str, dict]:
    """Per-episode stats of the new columns into meta/episodes (LeRobot's delete/split/merge rebuild stats.json
    from there, so stats only in stats.json would vanish); returns their aggregate for stats.json."""
    import pandas as pd
    from lerobot.datasets.compute_stats import aggregate_stats

    per_episode: list[dict] = []
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        df = pd.read_parquet(path)
        bounds = list(zip(df["dataset_from_index"], df["dataset_to_index"], strict=True))
        file_stats = [
            {name: column_stats(values[a:b], ft) for name, (values, ft) in columns.items()} for a, b in bounds
        ]
        for name in columns:
            for stat in file_stats[0][name]:
                df[f"stats/{name}/{stat}"] = [ep[name][stat].tolist() for ep in file_stats]
        df.to_parquet(path, index=False)
        per_episode += file_stats
    return aggregate_stats(per_episode)


def append_columns(parent_root: Path, out: Path, columns: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Copy the dataset at `parent_root` to `out` with `columns` (values in global index order) appended to every
    data file and to info.json's features: the tables LeRobot's add_features writes (same Arrow schema, images as
    PNG bytes), one row group per episode as LeRobot's writer lays them out."""
    import pyarrow.parquet as pq
    from lerobot.datasets.feature_utils import get_hf_features_from_features

    from glam_lerobot.writer_speedups import arrow_column

    shutil.copytree(parent_root, out, ignore=shutil.ignore_patterns("*.parquet", ".cache"))  # .cache: a Hub pull's
    for src in parent_root.rglob("*.parquet"):
        if src.relative_to(parent_root).parts[0] != "data":
            shutil.copy2(src, out / src.relative_to(parent_root))
    info_path = out / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"].update({k: {**ft, "shape": list(ft["shape"])} for k, (_, ft) in columns.items()})
    features = {k: {**ft, "shape": tuple(ft["shape"])} for k, ft in info["features"].items()}
    hf_features = get_hf_features_from_features(features)
    schema = hf_features.arrow_schema
    for src in sorted((parent_root / "data").rglob("*.parquet")):
        table = pq.read_table(src)
        rows = table["index"].to_numpy()
        new = {
            name: arrow_column(values[rows], hf_features[name], schema.field(name).type)
            for name, (values, _) in columns.items()
        }
        table = pa.Table.from_arrays(
            [table[n] if n in table.column_names else new[n] for n in schema.names], schema=schema
        )
        dst = out / src.relative_to(parent_root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_by_episode(table, dst)
    info_path.write_text(json.dumps(info, indent=4, ensure_ascii=False))


def write_by_episode(table: pa.Table, path: Path) -> None:
    """Write `table` as LeRobot's writer does: snappy, dictionary encoding, one row group per episode."""
    import pyarrow.parquet as pq

    episode = table["episode_index"].to_numpy()
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1], True])
    with pq.ParquetWriter(path, schema=table.schema, compression="snappy", use_dictionary=True) as writer:
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            writer.write_table(table.slice(a, b - a))


def add_columns(
    parent_root: Path | str,
    columns: dict[str, tuple[np.ndarray, dict]],
    *,
    revision: str,
    command: str,
    details: dict[str, Any] | None = None,
    output_root: Path | str | None = None,
) -> Path:
    """Write `parent + columns` as revision `revision`; return its root.

    `columns` maps a feature name to (values for every frame in global index order, LeRobot feature info).
    """
    from lerobot.datasets.io_utils import write_stats

    from glam_lerobot import writer_speedups

    writer_speedups.install()  # the new columns' stats (column_stats) through FastQuantileStats

    parent_root = Path(parent_root)
    out = Path(output_root) if output_root else default_root(parent_root, revision)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --revision or --output, or remove it")
    parent_meta = provenance.read(parent_root)
    repo_id = parent_meta.get("repo_id", f"local/{parent_root.name}")
    info = json.loads((parent_root / "meta" / "info.json").read_text())
    for name, (values, _) in columns.items():
        if name in info["features"]:
            raise ValueError(f"{parent_root}: column '{name}' already exists")
        if len(values) != info["total_frames"]:
            raise ValueError(
                f"{parent_root}: column '{name}' has {len(values)} values for {info['total_frames']} frames"
            )

    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)  # a half-built revision from an interrupted run: nothing in it is worth keeping
    append_columns(parent_root, tmp, columns)
    stats_path = parent_root / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    stats.update(_write_episode_stats(tmp, columns))
    write_stats(stats, tmp)

    parent_ref = {"repo_id": repo_id, "revision": parent_meta.get("revision", "main"), "root": str(parent_root)}
    step = {"command": command, "revision": revision, "columns": sorted(columns), **(details or {})}
    provenance.write(tmp, provenance.derived(parent_meta, revision=revision, parent=parent_ref, step=step))
    from glam_lerobot.writing import write_card

    write_card(tmp)
    from glam_lerobot.validate import require_valid

    require_valid(tmp, f"revision {revision!r}")  # before it is renamed into place
    tmp.rename(out)
    return out
