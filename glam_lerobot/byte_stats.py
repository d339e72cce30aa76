"""Exact, cheap statistics of 8-bit pixels for LeRobot 0.6's dataset writer.

LeRobot computes the per-episode stats of every camera and mask with `RunningQuantileStats`: per frame it casts
the pixels to float32 and bins them into 5,000-bin histograms with `np.histogram` (a sort per channel). That is
1.6 ms per 96 px frame and 8.1 ms per 224 px frame, against 0.6 ms to AV1-encode it: most of what `sim record`,
`ingest` and `relabel` spend writing. A uint8 channel has only 256 values, so counting them (`np.bincount`) holds
everything the stats need; the 5,000-bin histograms are built from the counts once, when the stats are read, so
the result is LeRobot's own `get_statistics` on the same histograms (without the approximation LeRobot makes
when a later frame widens the range). Other dtypes take LeRobot's path unchanged.

`install()` swaps this class in for `lerobot.datasets.compute_stats.RunningQuantileStats`, which both LeRobot's
streaming video encoder and `compute_episode_stats` look up at call time. The writer installs it in the process
that writes (tests/test_byte_stats.py compares the two on the same frames).
"""

from __future__ import annotations

import numpy as np
from lerobot.datasets import compute_stats

_LeRobotStats = compute_stats.RunningQuantileStats


class ByteQuantileStats(_LeRobotStats):
    """RunningQuantileStats that counts uint8 batches instead of binning them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._byte_counts: np.ndarray | None = None  # (channels, 256) counts while every batch is uint8

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch)
        if batch.dtype != np.uint8 or (self._count and self._byte_counts is None):
            self._fold_counts()
            return super().update(batch)
        batch = batch.reshape(-1, batch.shape[-1])
        counts = np.stack([np.bincount(batch[:, c], minlength=256) for c in range(batch.shape[1])])
        self._byte_counts = counts if self._byte_counts is None else self._byte_counts + counts
        self._count += len(batch)

    def get_statistics(self) -> dict[str, np.ndarray]:
        self._fold_counts()
        return super().get_statistics()

    def _fold_counts(self) -> None:
        """Turn the counts into the state LeRobot's update would have reached (float32, as from a float32 batch)."""
        if self._byte_counts is None:
            return
        counts, self._byte_counts = self._byte_counts.astype(np.float64), None
        values = np.arange(256, dtype=np.float64)
        n = counts.sum(1)
        seen = counts > 0
        self._min = np.array([values[s].min() for s in seen], np.float32)
        self._max = np.array([values[s].max() for s in seen], np.float32)
        self._mean = (counts @ values / n).astype(np.float32)
        self._mean_of_squares = (counts @ values**2 / n).astype(np.float32)
        bins = self._num_quantile_bins
        self._bin_edges, self._histograms = [], []
        for c in range(len(counts)):
            edges = np.linspace(self._min[c] - 1e-10, self._max[c] + 1e-10, bins + 1)
            # np.histogram's bins: [e_i, e_i+1) and the last one closed
            index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
            self._bin_edges.append(edges)
            self._histograms.append(np.bincount(index[seen[c]], weights=counts[c][seen[c]], minlength=bins))


def install() -> None:
    """Make LeRobot's writer use ByteQuantileStats in this process (idempotent)."""
    compute_stats.RunningQuantileStats = ByteQuantileStats
