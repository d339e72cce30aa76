"""LeRobot datasets without videos, written straight from episodes held in memory.

LeRobot's writer stages every `image` frame as a PNG file (add_frame), reads the files back for the episode's
image statistics and again to embed their bytes into the parquet file, and builds each episode's table through a
`datasets.Dataset` (save_episode): for the merged mixture of `relabel` (two 64 px cameras) that is 0.2-0.3 s per
episode, most of relabel's time after inference (issue 18). A dataset with no video feature needs none of it: this
writer encodes each frame's PNG in memory once (with LeRobot's own settings, so the bytes are the same), takes the
statistics from the arrays (LeRobot's recipe: `revisions.column_stats`) and writes the episode's Arrow table
(`writer_speedups.arrow_column`) with LeRobot's parquet settings and file rotation. Everything in meta/ is written by
LeRobot's own `LeRobotDatasetMetadata` (create, save_episode_tasks, save_episode, finalize), so the layout is
LeRobot's. tests/test_writing.py checks that both writers give the same files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PNG_COMPRESS_LEVEL = 6  # LeRobot's writer saves `image` frames at level 6 (image_writer.write_image)


def png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


class ArrowEpisodeWriter:
    """create -> save_episode(frames, task) per episode -> finalize, like LeRobotDataset for a dataset of
    numeric and `image` features only."""

    def __init__(self, root: Path, repo_id: str, fps: int, features: dict, robot_type: str | None = None):
        from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
        from lerobot.datasets.feature_utils import get_hf_features_from_features

        if any(ft["dtype"] == "video" for ft in features.values()):
            raise ValueError("ArrowEpisodeWriter writes datasets without video features")
        self.meta = LeRobotDatasetMetadata.create(
            repo_id=repo_id, fps=fps, features=features, robot_type=robot_type, root=root, use_videos=False
        )
        self.hf_features = get_hf_features_from_features(self.meta.features)
        self.schema = self.hf_features.arrow_schema
        self.root = Path(root)
        self._writer: pq.ParquetWriter | None = None
        self._file = (0, 0)
        self._file_start = 0  # first frame of the open data file

    def save_episode(self, frames: dict[str, np.ndarray], task: str) -> None:
        from lerobot.datasets.compute_stats import aggregate_stats, compute_episode_stats
        from lerobot.datasets.utils import update_chunk_file_indices
        from lerobot.utils.utils import flatten_dict

        from glam_lerobot.revisions import column_stats
        from glam_lerobot.writer_speedups import arrow_column

        meta, n = self.meta, len(next(iter(frames.values())))
        episode, start = meta.total_episodes, meta.total_frames
        meta.save_episode_tasks([task])
        columns = {
            **frames,
            "timestamp": np.arange(n) / meta.fps,  # float64 as in LeRobot's buffer (its stats), float32 on disk
            "frame_index": np.arange(n),
            "episode_index": np.full(n, episode),
            "index": np.arange(start, start + n),
            "task_index": np.full(n, meta.get_task_index(task)),
        }
        images = {k for k, ft in meta.features.items() if ft["dtype"] == "image"}
        # numeric stats from LeRobot's own function on the buffer save_episode would hand it ((1,)-features as
        # (N,)), image stats by its recipe on the arrays instead of the PNG files it would read back
        numeric = {
            k: v.reshape(n) if tuple(meta.features[k]["shape"]) == (1,) else v
            for k, v in columns.items()
            if k not in images and meta.features[k]["dtype"] not in ("string", "language")
        }
        stats = compute_episode_stats(numeric, meta.features)
        stats.update({k: column_stats(columns[k], meta.features[k]) for k in images})
        stats = {k: stats[k] for k in meta.features if k in stats}  # in the order LeRobot lists them
        table = pa.Table.from_arrays(
            [
                pa.array(
                    # the name LeRobot's staged file had (embed_images keeps the basename)
                    [{"bytes": png(f), "path": f"frame-{t:06d}.png"} for t, f in enumerate(columns[k])],
                    type=self.schema.field(k).type,
                )
                if k in images
                else arrow_column(columns[k], self.hf_features[k], self.schema.field(k).type)
                for k in self.schema.names
            ],
            schema=self.schema,
        )
        # LeRobot's rotation: a new file once this one would pass data_files_size_in_mb at its mean frame size
        if self._writer is not None:
            size = self._path().stat().st_size / 1024**2
            per_frame = size / max(start - self._file_start, 1)
            if size + per_frame * n >= meta.data_files_size_in_mb:
                self._writer.close()
                self._writer, self._file_start = None, start
                self._file = update_chunk_file_indices(*self._file, meta.chunks_size)
        if self._writer is None:
            self._path().parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._path(), schema=self.schema, compression="snappy", use_dictionary=True)
        self._writer.write_table(table)
        where = {
            "data/chunk_index": self._file[0],
            "data/file_index": self._file[1],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
        }
        # LeRobotDatasetMetadata.save_episode, except that info.json and stats.json (aggregated the same way) are
        # written once, at finalize, not after every episode (40% of this method's time for the merged mixture)
        meta._save_episode_metadata(
            {"episode_index": episode, "tasks": [task], "length": n, **where, **flatten_dict({"stats": stats})}
        )
        meta.info.total_episodes += 1
        meta.info.total_frames += n
        meta.info.total_tasks = len(meta.tasks)
        meta.info.splits = {"train": f"0:{meta.info.total_episodes}"}
        meta.stats = aggregate_stats([meta.stats, stats]) if meta.stats is not None else stats

    def _path(self) -> Path:
        chunk, file = self._file
        return self.root / self.meta.data_path.format(chunk_index=chunk, file_index=file)

    def finalize(self) -> None:
        from lerobot.datasets.io_utils import write_info, write_stats

        if self._writer is not None:
            self._writer.close()
            self._writer = None
        write_info(self.meta.info, self.root)
        if self.meta.stats is not None:
            write_stats(self.meta.stats, self.root)
        self.meta.finalize()
