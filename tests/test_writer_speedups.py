"""The writer's faster statistics and image embedding give LeRobot's own numbers and tables."""

import numpy as np

from glam_lerobot.writer_speedups import FastQuantileStats, _LeRobotStats


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
        ours, theirs = FastQuantileStats(), _LeRobotStats()
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
        assert all(a[k].dtype == b[k].dtype for k in ("min", "max", "mean", "std", "count"))


def test_byte_stats_equal_lerobots_exactly_when_the_range_is_known_from_the_first_frame():
    frames = _frames(7)
    frames[0][:2] = [[0, 0, 0], [255, 255, 255]]
    ours, theirs = FastQuantileStats(), _LeRobotStats()
    for frame in frames:
        ours.update(frame)
        theirs.update(frame)
    a, b = ours.get_statistics(), theirs.get_statistics()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-4)


def test_numeric_columns_give_lerobots_stats_in_one_vectorised_pass():
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(60, 160)).astype(np.float32)  # the merged mixture's chunk columns are 160 wide
    index = np.arange(60, dtype=np.int64)[:, None]  # frame_index-like: int64 is summarised in float64
    for column in (wide, index, wide[:, :3] * 100):
        ours, theirs = FastQuantileStats(), _LeRobotStats()
        ours.update(column)
        theirs.update(column)
        a, b = ours.get_statistics(), theirs.get_statistics()
        for key in b:
            # (LeRobot's own quantile dtype varies with the data: float32 where a bin edge is returned as is)
            assert key.startswith("q") or a[key].dtype == b[key].dtype, key
            assert a[key].shape == b[key].shape, key
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_switch_of_dtype_keeps_every_value():
    mixed = FastQuantileStats()
    mixed.update(np.full((10, 2), 7, np.uint8))
    mixed.update(np.full((10, 2), 9.0, np.float32))
    stats = mixed.get_statistics()
    assert stats["min"].tolist() == [7, 7] and stats["max"].tolist() == [9, 9] and stats["mean"].tolist() == [8, 8]
    assert stats["count"].tolist() == [20]


def test_embedding_images_in_batches_writes_lerobots_table(tmp_path):
    import datasets
    from PIL import Image

    from glam_lerobot.writer_speedups import _lerobot_embed_images, embed_images

    rng = np.random.default_rng(1)
    paths = []
    for k in range(7):
        paths.append(str(tmp_path / f"frame-{k}.png"))
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    features = datasets.Features({"observation.images.front": datasets.Image(), "x": datasets.Value("float32")})
    ds = datasets.Dataset.from_dict({"observation.images.front": paths, "x": np.arange(7.0)}, features=features)
    ours, theirs = embed_images(ds), _lerobot_embed_images(ds)
    assert ours.with_format("arrow")[:].equals(theirs.with_format("arrow")[:])
    assert ours[3]["observation.images.front"].size == (16, 16)


def test_install_and_uninstall_swap_lerobots_functions_and_back():
    from lerobot.datasets import compute_stats, dataset_writer, io_utils

    from glam_lerobot import writer_speedups

    writer_speedups.install()
    assert compute_stats.RunningQuantileStats is FastQuantileStats
    assert io_utils.embed_images is dataset_writer.embed_images is writer_speedups.embed_images
    writer_speedups.uninstall()
    assert compute_stats.RunningQuantileStats is _LeRobotStats
    assert dataset_writer.embed_images is writer_speedups._lerobot_embed_images
    writer_speedups.install()  # as the writer leaves it in a process
