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


def test_episode_tables_built_with_pyarrow_are_the_files_lerobots_writer_builds(tmp_path):
    """The writer's per-episode Arrow table (EpisodeTable, not datasets.Dataset.from_dict): the same data files
    and per-episode metadata, images as the same PNG bytes; only `datasets`' random fingerprint is gone."""
    import json

    import pyarrow.parquet as pq
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import writer_speedups

    features = {
        "observation.images.front": {"dtype": "image", "shape": (16, 16, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
        "reward": {"dtype": "float32", "shape": (1,), "names": None},
        "count": {"dtype": "int64", "shape": (1,), "names": None},
    }
    rng = np.random.default_rng(2)
    episodes = [
        [
            {
                "observation.images.front": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                "observation.state": rng.normal(size=3).astype(np.float32),
                "reward": np.array([t / 10], np.float32),
                "count": np.array([t], np.int64),
                "task": f"task {ep % 2}",
            }
            for t in range(4 + ep)
        ]
        for ep in range(3)
    ]

    def write(root):
        ds = LeRobotDataset.create("me/t", 10, features, root=root, use_videos=False)
        for frames in episodes:
            for frame in frames:
                ds.add_frame(dict(frame))  # add_frame pops the task
            ds.save_episode()
        ds.finalize()

    try:
        writer_speedups.uninstall()
        write(tmp_path / "theirs")
    finally:
        writer_speedups.install()
    write(tmp_path / "ours")
    files = sorted((tmp_path / "theirs").rglob("*.parquet"))
    assert any("data" in p.parts for p in files) and any("episodes" in p.parts for p in files)
    for path in files:
        a, b = pq.read_table(tmp_path / "ours" / path.relative_to(tmp_path / "theirs")), pq.read_table(path)
        assert a.schema.equals(b.schema), path
        # stats come from FastQuantileStats (its own tests above): min, max and count are exact
        exact = [c for c in a.column_names if not c.startswith("stats/") or c.split("/")[-1] in ("min", "max", "count")]
        assert a.select(exact).equals(b.select(exact)), path
        if "data" in path.parts:
            hf = [json.loads(t.schema.metadata[b"huggingface"])["info"] for t in (a, b)]
            assert hf[0] == hf[1]
            assert pq.ParquetFile(tmp_path / "ours" / path.relative_to(tmp_path / "theirs")).num_row_groups == 3
    ds = LeRobotDataset("me/t", root=tmp_path / "ours")
    frame = episodes[1][2]["observation.images.front"]
    assert np.array_equal(
        (ds[6]["observation.images.front"].numpy() * 255).round().astype(np.uint8), frame.transpose(2, 0, 1)
    )
