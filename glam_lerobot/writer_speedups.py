"""Faster equivalents of three LeRobot 0.6 writer internals that cost more than writing the data itself.

Every dataset this toolkit writes goes through LeRobot's own create / add_frame / save_episode, which spends most
of its time in three places (measured with `sim record`, `ingest umi` and `relabel`):

1. `compute_stats.RunningQuantileStats`. Per frame of every camera it casts the pixels to float32 and bins them
   into 5,000-bin histograms with `np.histogram` (1.6 ms per 96 px frame, 8.1 ms at 224 px, against 0.6 ms to
   AV1-encode the frame), and for every numeric column it reads each quantile with its own cumsum over 5,000 bins
   per dimension (the merged mixture's 160-wide chunk columns: 80,000 cumsums). `FastQuantileStats` counts uint8
   values (256 per channel hold everything), keeps numeric batches as they are, and builds the same 5,000-bin
   histograms once, when the stats are read; the quantiles are read from them with one vectorised cumsum. The
   numbers are LeRobot's (tests/test_writer_speedups.py), without the approximation LeRobot makes when a later
   batch widens the range.
2. `io_utils.embed_images`, which embeds the PNG bytes of `image` features with `datasets.map(...,
   batched=False)`: one Arrow schema round trip per row (3.4 ms per frame). The same function over batches of
   rows writes the same table.
3. `DatasetWriter._save_episode_data`, which turns each episode's buffer into its Arrow table through
   `datasets.Dataset.from_dict`: per episode, a few hundred `datasets.Features` objects and ~50,000 recursive
   `require_decoding` calls (0.2-0.3 s an episode, most of the merged mixture's write in relabel). `EpisodeTable`
   builds the same table with pyarrow (`arrow_column`); the writer only asks the result for its length and table.

`install()` puts them in place in this process: LeRobot's streaming encoder and `compute_episode_stats` look the
stats class up at call time, the writer calls `embed_images` and `datasets.Dataset.from_dict` through its module's
names. The writer installs them before it creates a dataset. Written against lerobot 0.6.x; anything else is left
alone.
"""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import numpy as np
import pyarrow as pa
from lerobot.datasets import compute_stats, dataset_writer, io_utils

_LeRobotStats = compute_stats.RunningQuantileStats
_lerobot_embed_images = io_utils.embed_images


class FastQuantileStats(_LeRobotStats):
    """RunningQuantileStats that defers its histograms to get_statistics (counts for uint8 pixels)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._byte_counts: np.ndarray | None = None  # (channels, 256) value counts of uint8 batches
        self._batches: list[np.ndarray] = []  # numeric batches, cast as LeRobot casts them

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch)
        batch = batch.reshape(-1, batch.shape[-1])
        if self._histograms is not None:  # (never, in the writer) state already folded: LeRobot's own path
            return super().update(batch)
        if batch.dtype == np.uint8 and not self._batches:
            counts = np.stack([np.bincount(batch[:, c], minlength=256) for c in range(batch.shape[1])])
            self._byte_counts = counts if self._byte_counts is None else self._byte_counts + counts
        else:
            if self._byte_counts is not None:  # a switch of dtype: the counts become rows again
                values = np.arange(256, dtype=np.uint8)
                self._batches.append(np.stack([np.repeat(values, c) for c in self._byte_counts], 1))
                self._byte_counts = None
            self._batches.append(batch.astype(np.result_type(batch.dtype, np.float32), copy=False))
        self._count += len(batch)

    def get_statistics(self) -> dict[str, np.ndarray]:
        self._fold()
        return super().get_statistics()

    def _fold(self) -> None:
        """Set the state LeRobot's update would have reached: min, max, means, and the 5,000-bin histograms."""
        if self._byte_counts is not None:
            weights = self._byte_counts.astype(np.float64)
            values = np.broadcast_to(np.arange(256, dtype=np.float64), weights.shape)
            dtype = np.float32
        elif self._batches:
            data = np.concatenate(self._batches).T.astype(np.float64)  # (dims, rows)
            dtype = self._batches[0].dtype
            values, weights = data, np.ones_like(data)
        else:
            return
        seen = weights > 0
        n = weights.sum(1)
        self._min = np.where(seen, values, np.inf).min(1).astype(dtype)
        self._max = np.where(seen, values, -np.inf).max(1).astype(dtype)
        self._mean = ((weights * values).sum(1) / n).astype(dtype)
        self._mean_of_squares = ((weights * values**2).sum(1) / n).astype(dtype)
        bins = self._num_quantile_bins
        self._bin_edges, self._histograms = [], []
        for d in range(len(values)):
            edges = np.linspace(self._min[d] - 1e-10, self._max[d] + 1e-10, bins + 1)
            # np.histogram's bins: [e_i, e_i+1), the last one closed
            index = np.clip(np.searchsorted(edges, values[d], side="right") - 1, 0, bins - 1)
            self._bin_edges.append(edges)
            self._histograms.append(np.bincount(index[seen[d]], weights=weights[d][seen[d]], minlength=bins))
        self._byte_counts, self._batches = None, []

    def _compute_quantiles(self) -> list[np.ndarray]:
        """LeRobot's _compute_single_quantile for every dimension at once."""
        cumsum = np.cumsum(np.stack(self._histograms), axis=1)  # (dims, bins)
        edges = np.stack(self._bin_edges)  # (dims, bins + 1)
        rows = np.arange(len(cumsum))
        results = []
        for q in self._quantile_list:
            target = q * self._count
            idx = (cumsum < target).sum(1)  # np.searchsorted(cumsum, target): the first bin reaching target
            inside = np.clip(idx, 1, cumsum.shape[1] - 1)
            before = cumsum[rows, inside - 1]
            in_bin = cumsum[rows, inside] - before
            lo, hi = edges[rows, inside], edges[rows, inside + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.where(in_bin == 0, lo, lo + (target - before) / in_bin * (hi - lo))
            value = np.where(idx == 0, edges[:, 0], value)
            value = np.where(idx >= cumsum.shape[1], edges[:, -1], value)
            results.append(value)
        return results


def arrow_column(values, feature, arrow_type: pa.DataType) -> pa.Array:
    """`values` (one per row) as the Arrow column `datasets` builds for `feature`, without `datasets.Dataset`."""
    if isinstance(feature, datasets.Image):  # arrays or paths -> {bytes, path}; paths are embedded later
        return pa.array([feature.encode_example(v) for v in values], type=arrow_type)
    values = np.ascontiguousarray(values)
    if isinstance(feature, datasets.Value):
        return pa.array(values.reshape(len(values))).cast(arrow_type)
    flat = values.reshape(len(values), -1)
    if pa.types.is_fixed_size_list(arrow_type) and arrow_type.list_size == flat.shape[1] and values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1]).cast(arrow_type)
    # other shapes (2-D arrays): datasets' own encoding, slower
    ds = datasets.Dataset.from_dict({"c": list(values)}, features=datasets.Features({"c": feature}))
    return ds.data.column("c").combine_chunks().cast(arrow_type)


class EpisodeTable:
    """The `datasets.Dataset` LeRobot's writer builds per episode, as far as it uses it: a length and a table."""

    def __init__(self, table: pa.Table):
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    def with_format(self, *_args, **_kwargs) -> EpisodeTable:
        return self

    def __getitem__(self, key):
        if key != slice(None):
            raise KeyError(key)
        return self.table

    @classmethod
    def from_dict(cls, mapping: dict, features: datasets.Features, split=None) -> EpisodeTable:
        schema = features.arrow_schema
        columns = [arrow_column(mapping[name], features[name], schema.field(name).type) for name in schema.names]
        return cls(pa.Table.from_arrays(columns, schema=schema))


_writer_datasets = SimpleNamespace(Dataset=EpisodeTable)  # the writer's `datasets` name: only Dataset.from_dict


def embed_images(dataset):
    """io_utils.embed_images over batches of rows instead of one row at a time (the same table)."""
    from datasets.table import embed_table_storage

    if isinstance(dataset, EpisodeTable):
        return EpisodeTable(embed_table_storage(dataset.table))
    format = dataset.format
    dataset = dataset.with_format("arrow").map(embed_table_storage, batched=True, batch_size=256)
    return dataset.with_format(**format)


def install() -> None:
    """Use both in this process (idempotent)."""
    import lerobot

    if not lerobot.__version__.startswith("0.6."):
        return  # written against 0.6.x internals; another version keeps its own code
    compute_stats.RunningQuantileStats = FastQuantileStats
    io_utils.embed_images = embed_images
    dataset_writer.embed_images = embed_images
    dataset_writer.datasets = _writer_datasets


def uninstall() -> None:
    """LeRobot's own code again (the benchmarks' stock baseline)."""
    compute_stats.RunningQuantileStats = _LeRobotStats
    io_utils.embed_images = dataset_writer.embed_images = _lerobot_embed_images
    dataset_writer.datasets = datasets
