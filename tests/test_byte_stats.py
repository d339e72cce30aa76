"""The writer's pixel statistics: LeRobot's own numbers, from counts instead of per-frame histograms."""

import numpy as np

from glam_lerobot.byte_stats import ByteQuantileStats, _LeRobotStats


def _frames(seed: int, n: int = 12, size: int = 40) -> list[np.ndarray]:
    """Camera-like frames whose range widens over the episode (dark first, bright objects later)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for k in range(n):
        img = np.stack([(x * 2 + k) % 120, (y + 3 * k) % 90, (x + y) % 60], -1) + 40
        if k > 4:
            img[5:12, 5 + k : 12 + k] = (250, 10, 200)  # the range grows: LeRobot re-bins, counts do not need to
        out.append((img + rng.integers(0, 3, img.shape)).clip(0, 255).astype(np.uint8).reshape(-1, 3))
    return out


def test_byte_stats_equal_lerobots_on_frames_whose_range_grows():
    for seed in range(3):
        ours, theirs = ByteQuantileStats(), _LeRobotStats()
        for frame in _frames(seed):
            ours.update(frame)
            theirs.update(frame)
        a, b = ours.get_statistics(), theirs.get_statistics()
        assert set(a) == set(b)
        for key in ("min", "max", "count"):
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-5)
        np.testing.assert_allclose(a["std"], b["std"], rtol=1e-4)
        for q in ("q01", "q10", "q50", "q90", "q99"):
            # LeRobot re-bins its histogram when the range widens (bin centres move); counts are exact
            np.testing.assert_allclose(a[q], b[q], atol=0.5)
        assert all(a[k].dtype == b[k].dtype for k in a)


def test_byte_stats_equal_lerobots_exactly_when_the_range_is_known_from_the_first_frame():
    frames = _frames(7)
    frames[0][:2] = [[0, 0, 0], [255, 255, 255]]
    ours, theirs = ByteQuantileStats(), _LeRobotStats()
    for frame in frames:
        ours.update(frame)
        theirs.update(frame)
    a, b = ours.get_statistics(), theirs.get_statistics()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-4)


def test_other_dtypes_and_a_switch_of_dtype_take_lerobots_path():
    rng = np.random.default_rng(0)
    floats = rng.normal(size=(50, 4)).astype(np.float32)
    ours, theirs = ByteQuantileStats(), _LeRobotStats()
    ours.update(floats)
    theirs.update(floats)
    for key, value in theirs.get_statistics().items():
        np.testing.assert_array_equal(ours.get_statistics()[key], value)
    mixed = ByteQuantileStats()
    mixed.update(np.full((10, 2), 7, np.uint8))
    mixed.update(np.full((10, 2), 9.0, np.float32))
    stats = mixed.get_statistics()
    assert stats["min"].tolist() == [7, 7] and stats["max"].tolist() == [9, 9] and stats["mean"].tolist() == [8, 8]
