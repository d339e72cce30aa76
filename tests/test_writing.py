"""Writing datasets: what every `ingest`, `sim record` and `relabel` stands on."""

import json

import numpy as np
import pytest

from glam_lerobot import provenance, schema, synthetic
from glam_lerobot.writing import EpisodeError, write_dataset


def test_two_workers_write_one_dataset_that_stock_lerobot_loads(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    jobs = [synthetic.job(i, length=8 + i) for i in range(5)]
    summary = write_dataset(
        tmp_path / "ds",
        "me/synthetic",
        10,
        synthetic.features(),
        jobs,
        synthetic.produce,
        workers=2,
        shard_size=2,
        glam_meta={"embodiment": "synthetic"},
    )
    assert (summary.episodes, summary.frames) == (5, sum(8 + i for i in range(5)))
    ds = LeRobotDataset("me/synthetic", root=tmp_path / "ds", video_backend="pyav")
    assert ds.meta.total_episodes == 5 and len(ds) == summary.frames
    # episode 3 comes back with its own values, in order, after the shards were aggregated
    expected = synthetic.produce(jobs[3])["frames"]
    start = int(ds.meta.episodes["dataset_from_index"][3])
    for t in (0, 5):
        item = ds[start + t]
        np.testing.assert_allclose(item[schema.ACTION].numpy(), expected[schema.ACTION][t], atol=1e-6)
        assert int(item["frame_index"]) == t and int(item["episode_index"]) == 3
        img = item[schema.image_key("front")].permute(1, 2, 0).numpy() * 255
        assert np.abs(img - expected[schema.image_key("front")][t]).mean() < 8  # lossy video, but the same picture
    assert provenance.read(tmp_path / "ds")["embodiment"] == "synthetic"
    assert not (tmp_path / "ds.partial").exists()
    # stats.json covers the re-numbered indices (LeRobot's aggregate keeps each shard's own: episode_index <= 1)
    stats = ds.meta.stats
    assert stats["episode_index"]["max"].tolist() == [4] and stats["index"]["max"].tolist() == [summary.frames - 1]
    from glam_lerobot.validate import validate

    assert validate(tmp_path / "ds").failed == []


def test_the_next_episode_is_produced_while_the_current_one_is_saved_and_order_is_kept(tmp_path, monkeypatch):
    import threading

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    started = {i: threading.Event() for i in range(4)}
    threads, overlapped = set(), []

    def produce(job):
        threads.add(threading.get_ident())
        started[job["episode"]].set()
        return synthetic.produce(job)

    save = LeRobotDataset.save_episode

    def save_episode(self, *args, **kwargs):
        k = self.meta.total_episodes  # the episode being saved
        if k + 1 in started:  # while episode k is saved, episode k+1 is already being produced
            overlapped.append(started[k + 1].wait(timeout=20))
        return save(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDataset, "save_episode", save_episode)
    jobs = [synthetic.job(i, length=5 + 3 * i) for i in range(4)]
    summary = write_dataset(tmp_path / "ds", "me/overlap", 10, synthetic.features(), jobs, produce)
    assert overlapped == [True, True, True]
    assert len(threads) == 1 and threading.get_ident() not in threads  # one producer thread, not the caller's
    ds = LeRobotDataset("me/overlap", root=tmp_path / "ds", video_backend="pyav")
    assert summary.episodes == 4 and ds.meta.episodes["length"][:] == [5, 8, 11, 14]


def test_nan_is_named_and_nothing_is_left_that_looks_finished(tmp_path):
    jobs = [synthetic.job(0), synthetic.job(1, corrupt="nan")]
    with pytest.raises(EpisodeError, match=r"episode 1: field 'observation.ee_pose': NaN"):
        write_dataset(tmp_path / "ds", "me/bad", 10, synthetic.features(), jobs, synthetic.produce)
    assert not (tmp_path / "ds").exists()


def test_skip_bad_drops_and_lists_the_bad_episode(tmp_path):
    jobs = [synthetic.job(0), synthetic.job(1, corrupt="nan"), synthetic.job(2)]
    summary = write_dataset(tmp_path / "ds", "me/bad", 10, synthetic.features(), jobs, synthetic.produce, skip_bad=True)
    assert summary.episodes == 2 and len(summary.bad) == 1 and "episode 1" in summary.bad[0]


def test_an_interrupted_write_resumes_from_its_finished_shards(tmp_path):
    jobs = [synthetic.job(0), synthetic.job(1), synthetic.job(2, corrupt="nan"), synthetic.job(3)]
    with pytest.raises(EpisodeError):
        write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, synthetic.produce, shard_size=2)
    assert _finished(tmp_path / "ds.partial") == ["00000"] and not (tmp_path / "ds").exists()
    # a different plan must not be mixed with the unfinished one
    with pytest.raises(FileExistsError, match="unfinished write from other input or settings"):
        write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs[:3], synthetic.produce, shard_size=2)
    # the same plan, with the faulty episode now readable, resumes: shard 0 is reused, not rewritten
    summary = write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, _nan_fixed, shard_size=2)
    assert summary.resumed_shards == 1 and summary.episodes == 4


def _finished(work) -> list[str]:
    """The tasks of an unfinished write that datatrove has marked complete."""
    return sorted(p.name for p in (work / "logs" / "completions").iterdir())


def _contents(root) -> tuple:
    """What a dataset holds: its data table (every column, with its Arrow types), every decoded video frame, its
    stats and its episode boundaries."""
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables(pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet")))
    frames = {}
    for video in sorted((root / "videos").rglob("*.mp4")):
        with av.open(str(video)) as container:
            frames[video.parent.parent.name] = np.stack(
                [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            )
    stats = json.loads((root / "meta" / "stats.json").read_text())
    episodes = pa.concat_tables(pq.read_table(p) for p in sorted((root / "meta" / "episodes").rglob("*.parquet")))
    bounds = episodes.select(["episode_index", "length", "dataset_from_index", "dataset_to_index"]).to_pylist()
    return table, frames, stats, bounds


def _assert_same_dataset(a, b) -> None:
    table_a, frames_a, stats_a, bounds_a = _contents(a)
    table_b, frames_b, stats_b, bounds_b = _contents(b)
    assert table_a.schema.equals(table_b.schema), f"{table_a.schema}\n!=\n{table_b.schema}"
    assert table_a.equals(table_b)  # every value of every row, in order
    assert frames_a.keys() == frames_b.keys() and frames_a
    for camera in frames_a:
        np.testing.assert_array_equal(frames_a[camera], frames_b[camera])
    assert bounds_a == bounds_b
    assert stats_a.keys() == stats_b.keys()
    for key in stats_a:  # merged in another order: equal to float rounding
        for stat in stats_a[key]:
            np.testing.assert_allclose(stats_a[key][stat], stats_b[key][stat], rtol=1e-7, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("resume_workers", [1, 3])
def test_a_resumed_write_equals_an_uninterrupted_one_whatever_the_worker_count(tmp_path, resume_workers):
    """Interrupted with --workers 2 after its first shard, resumed with another worker count: the same dataset
    as one uninterrupted process writes (rows, Arrow types, decoded frames, stats), every episode once."""
    partial = tmp_path / "ds.partial"
    jobs = [synthetic.job(i, length=6 + i) for i in range(3)]
    broken = [*jobs[:2], {**jobs[2], "corrupt": "nan", "wait_for": str(partial / "logs" / "completions" / "*")}]
    with pytest.raises(EpisodeError):
        write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), broken, synthetic.produce, workers=2)
    assert _finished(partial) == ["00000"]  # datatrove's completion marker of the first shard's task
    # the first run's plan and the fixed job list are the same plan (the failure was in the data, not the plan)
    summary = write_dataset(
        tmp_path / "ds", "me/r", 10, synthetic.features(), broken, _nan_fixed, workers=resume_workers
    )
    assert (summary.episodes, summary.resumed_shards) == (3, 1)
    write_dataset(tmp_path / "whole", "me/r", 10, synthetic.features(), jobs, synthetic.produce, workers=1)
    _assert_same_dataset(tmp_path / "ds", tmp_path / "whole")


def test_a_changed_input_at_the_same_path_is_refused_or_replaced_never_reused(tmp_path):
    src = tmp_path / "buffer.bin"
    src.write_bytes(b"first recording")
    jobs = [synthetic.job(0), synthetic.job(1)]

    def meta():
        return {"source": {"format": "test", "files": provenance.file_records([src])}}

    write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, synthetic.produce, glam_meta=meta())
    again = write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, synthetic.produce, glam_meta=meta())
    assert again.episodes == 2 and "already complete" in again.lines()[0]  # the same input: reused, and said so
    src.write_bytes(b"another recording, same path")
    with pytest.raises(FileExistsError, match=r"buffer.bin changed \(sha256 .* -> .*\).*--overwrite"):
        write_dataset(tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, synthetic.produce, glam_meta=meta())
    assert provenance.read(tmp_path / "ds")["source"]["files"][0]["sha256"] != meta()["source"]["files"][0]["sha256"]
    # --overwrite: the new dataset replaces the old one, and meta/glam.json records the new checksum
    longer = [synthetic.job(0), synthetic.job(1), synthetic.job(2)]
    summary = write_dataset(
        tmp_path / "ds", "me/r", 10, synthetic.features(), longer, synthetic.produce, glam_meta=meta(), overwrite=True
    )
    assert summary.episodes == 3
    assert provenance.read(tmp_path / "ds")["source"]["files"] == meta()["source"]["files"]
    assert not (tmp_path / "ds.partial").exists()


def test_an_unfinished_write_is_never_resumed_from_other_input(tmp_path):
    src = tmp_path / "buffer.bin"
    src.write_bytes(b"first")
    jobs = [synthetic.job(0), synthetic.job(1), synthetic.job(2, corrupt="nan")]
    meta = {"source": {"format": "test", "files": provenance.file_records([src])}}
    with pytest.raises(EpisodeError):
        write_dataset(
            tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, synthetic.produce, shard_size=1, glam_meta=meta
        )
    src.write_bytes(b"second")
    meta2 = {"source": {"format": "test", "files": provenance.file_records([src])}}
    with pytest.raises(FileExistsError, match="buffer.bin changed.*resuming would mix"):
        write_dataset(
            tmp_path / "ds", "me/r", 10, synthetic.features(), jobs, _nan_fixed, shard_size=1, glam_meta=meta2
        )
    summary = write_dataset(
        tmp_path / "ds",
        "me/r",
        10,
        synthetic.features(),
        jobs,
        _nan_fixed,
        shard_size=1,
        glam_meta=meta2,
        overwrite=True,
    )
    assert (summary.episodes, summary.resumed_shards) == (3, 0)  # started again from the new input


def test_an_existing_different_dataset_is_never_overwritten(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset(tmp_path / "ds", "me/x", 10, synthetic.features(), [synthetic.job(0)], synthetic.produce)
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"


def test_an_empty_output_folder_is_simply_used(tmp_path):
    (tmp_path / "ds").mkdir()
    summary = write_dataset(tmp_path / "ds", "me/x", 10, synthetic.features(), [synthetic.job(0)], synthetic.produce)
    assert summary.episodes == 1 and (tmp_path / "ds" / "meta" / "info.json").is_file()


def test_wrong_image_size_is_named(tmp_path):
    with pytest.raises(EpisodeError, match="image size"):
        write_dataset(
            tmp_path / "ds", "me/x", 10, synthetic.features(image_size=48), [synthetic.job(0)], synthetic.produce
        )


def test_frames_too_small_for_the_video_encoder_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="too small for the AV1 encoder"):
        write_dataset(
            tmp_path / "ds",
            "me/x",
            10,
            synthetic.features(image_size=16),
            [synthetic.job(0, image_size=16)],
            synthetic.produce,
        )
    assert not (tmp_path / "ds.partial").exists()


def _nan_fixed(job):
    return synthetic.produce({**job, "corrupt": None})


def test_workers_auto_starts_a_process_only_where_it_repays_its_start_up():
    from glam_lerobot.writing import parse_workers, resolve_workers

    assert resolve_workers("auto", 20, cores=2) == 1  # the default's 20 episodes: one process overlaps already
    assert resolve_workers("auto", 400, cores=2) == 1  # two cores are busy with one writer process
    assert resolve_workers("auto", 400, cores=16) == 8 and resolve_workers("auto", 100, cores=16) == 2
    assert resolve_workers(3, 5) == 3 and resolve_workers("2", 5) == 2
    for bad in ("0", "many", -1):
        with pytest.raises(ValueError, match="--workers"):
            parse_workers(bad)


def test_a_one_process_write_is_one_shard_and_never_pays_for_a_merge(tmp_path, monkeypatch):
    import lerobot.datasets.aggregate

    def no_merge(*args, **kwargs):
        raise AssertionError("aggregate_datasets rewrites every row: a one-process write must not need it")

    monkeypatch.setattr(lerobot.datasets.aggregate, "aggregate_datasets", no_merge)
    jobs = [synthetic.job(i, length=4) for i in range(25)]  # more than one parallel shard's 20 episodes
    summary = write_dataset(tmp_path / "ds", "me/one", 10, synthetic.features(), jobs, synthetic.produce, workers=1)
    assert summary.episodes == 25 and summary.frames == 100


def test_a_dataset_without_videos_is_written_as_lerobots_own_writer_writes_it(tmp_path):
    """Image-only datasets (relabel's merged mixture) skip LeRobot's per-frame PNG staging (arrow_episodes.py):
    the same data files (PNG bytes included), tasks, info and episode metadata as LeRobot's create / add_frame /
    save_episode, and the same frames through a stock LeRobotDataset."""
    import pyarrow.parquet as pq
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import writer_speedups

    features = synthetic.features(image_size=32)
    for key in features:
        if features[key]["dtype"] == "video":
            features[key] = {**features[key], "dtype": "image"}
    jobs = [synthetic.job(i, length=5 + i, image_size=32, task=f"task {i % 2}") for i in range(3)]
    ours = write_dataset(tmp_path / "ours", "me/x", 10, features, jobs, synthetic.produce).root
    writer_speedups.install()  # the same statistics code on both sides: only the writing differs
    theirs = LeRobotDataset.create("me/x", 10, features, root=tmp_path / "theirs", use_videos=False)
    for job in jobs:
        episode = synthetic.produce(job)
        for t in range(job["length"]):
            theirs.add_frame({**{k: v[t] for k, v in episode["frames"].items()}, "task": episode["task"]})
        theirs.save_episode()
    theirs.finalize()
    theirs = tmp_path / "theirs"

    files = sorted(p.relative_to(theirs) for p in theirs.rglob("*.parquet"))
    assert sorted(p.relative_to(ours) for p in ours.rglob("*.parquet")) == files
    for path in files:
        a, b = pq.read_table(ours / path), pq.read_table(theirs / path)
        assert a.schema.equals(b.schema) and a.equals(b), path
    info = [json.loads((r / "meta" / "info.json").read_text()) for r in (ours, theirs)]
    assert info[0] == info[1]
    stats = [json.loads((r / "meta" / "stats.json").read_text()) for r in (ours, theirs)]
    assert stats[0] == stats[1]
    a, b = LeRobotDataset("me/x", root=ours), LeRobotDataset("me/x", root=theirs)
    for i in (0, 7, len(a) - 1):
        for key in ("observation.images.front", schema.STATE, "task"):
            assert (a[i][key] == b[i][key]).all() if key != "task" else a[i][key] == b[i][key]
