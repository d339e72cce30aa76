"""Ingest speed: frames/s for a UMI replay buffer and for ROS 2 bags with two 224x224 cameras at 10 Hz.

For each source it prints dataset frames per second of wall time for
  ingest, 1 worker / 2 workers   glam_lerobot.ingest (write_dataset: streaming encoding, shards, aggregate)
  add_frame loop                 the same decoded episodes fed to one stock LeRobotDataset (create / add_frame /
                                 save_episode / finalize, LeRobot's defaults: PNG staging, encode at save)
  encoder floor                  PyAV + LeRobot's default AV1 settings encoding the same frames, nothing else
Run: nice uv run python benchmarks/bench_ingest.py [--episodes 3] [--seconds 8] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

os.environ.setdefault("SVT_LOG", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def scene(k: int, size: int, shift: int = 0) -> np.ndarray:
    """A smooth picture with a moving square: compresses like a tabletop, not like noise."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([(x + k + shift) % 256, (y * 2 + shift) % 256, ((x + y) // 2) % 256], -1).astype(np.uint8)
    c = (k * 3 + shift) % (size - 40)
    img[c : c + 40, c : c + 40] = (200, 40, 40)
    return img


def make_umi(path: Path, episodes: int, seconds: float, size: int) -> None:
    import zarr
    from imagecodecs.numcodecs import Jpegxl, register_codecs

    register_codecs(verbose=False)
    n_ep = int(seconds * 59.94)
    n = n_ep * episodes
    store = zarr.ZipStore(str(path), mode="w")
    root = zarr.group(store)
    data, meta = root.create_group("data"), root.create_group("meta")
    t = np.arange(n)[:, None] / 59.94
    data.array("robot0_eef_pos", np.concatenate([np.sin(t), np.cos(t), t * 0], 1).astype(np.float32), compressor=None)
    data.array(
        "robot0_eef_rot_axis_angle", np.concatenate([t * 0.1, t * 0, t * 0 + 1], 1).astype(np.float32), compressor=None
    )
    data.array("robot0_gripper_width", (0.05 + 0.02 * np.sin(t)).astype(np.float32), compressor=None)
    cam = data.zeros(
        "camera0_rgb",
        shape=(n, size, size, 3),
        chunks=(1, size, size, 3),
        dtype=np.uint8,
        compressor=Jpegxl(level=99, numthreads=1),
    )
    for k in range(n):
        cam[k] = scene(k, size)
    meta.array("episode_ends", np.arange(1, episodes + 1, dtype=np.int64) * n_ep, compressor=None)
    store.close()


def make_bags(folder: Path, episodes: int, seconds: float, size: int) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    names = [f"joint_{i}" for i in range(1, 8)] + ["robotiq_85_left_knuckle_joint"]
    t0 = 1_700_000_000_000_000_000
    for e in range(episodes):
        events = []
        for t in np.arange(0, seconds, 1 / 40):
            events.append(
                (
                    t,
                    "/joint_states",
                    "sensor_msgs/msg/JointState",
                    lambda h, t=t: T["sensor_msgs/msg/JointState"](
                        header=h,
                        name=names,
                        position=np.array([*np.sin(t + np.arange(7)), 0.4]),
                        velocity=np.zeros(0),
                        effort=np.zeros(0),
                    ),
                )
            )
        for cam, topic in ((0, "/camera/color/image_raw"), (1, "/camera_overhead/color/image_raw")):
            for k, t in enumerate(np.arange(0, seconds, 1 / 10) + 0.01 * cam):
                events.append(
                    (
                        t,
                        topic,
                        "sensor_msgs/msg/Image",
                        lambda h, k=k, cam=cam: T["sensor_msgs/msg/Image"](
                            header=h,
                            height=size,
                            width=size,
                            encoding="rgb8",
                            is_bigendian=0,
                            step=size * 3,
                            data=scene(k, size, 60 * cam).ravel(),
                        ),
                    )
                )
        events.sort(key=lambda ev: ev[0])
        with Writer(folder / f"demo_{e:03d}", version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {}
            for t, topic, typ, make in events:
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, typ, typestore=ts)
                ns = t0 + int(t * 1e9)
                h = T["std_msgs/msg/Header"](
                    stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=""
                )
                w.write(conns[topic], ns, ts.serialize_cdr(make(h), typ))


def add_frame_loop(plan, root: Path) -> float:
    """The straightforward way: decode each episode, add_frame every frame into one stock LeRobotDataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import writer_speedups

    writer_speedups.uninstall()  # stock: LeRobot's own stats and image embedding
    start = time.perf_counter()
    ds = LeRobotDataset.create("bench/loop", plan.fps, plan.features, root=root, video_backend="pyav")
    for job in plan.jobs:
        episode = plan.produce(job)
        frames = episode["frames"]
        for t in range(len(next(iter(frames.values())))):
            ds.add_frame({**{k: v[t] for k, v in frames.items()}, "task": episode["task"]})
        ds.save_episode()
    ds.finalize()
    writer_speedups.install()
    return time.perf_counter() - start


def encoder_floor(plan) -> tuple[float, float]:
    """Seconds to AV1-encode every camera of every episode with PyAV and LeRobot's defaults, and to decode inputs."""
    import av
    from lerobot.configs.video import rgb_encoder_defaults

    cfg = rgb_encoder_defaults()
    t_read, t_enc = 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, job in enumerate(plan.jobs):
            a = time.perf_counter()
            frames = plan.produce(job)["frames"]
            t_read += time.perf_counter() - a
            for key, arr in frames.items():
                if arr.ndim != 4:
                    continue
                a = time.perf_counter()
                with av.open(f"{tmp}/{i}_{key}.mp4", "w") as out:
                    stream = out.add_stream(cfg.vcodec, plan.fps, options=cfg.get_codec_options(None, as_strings=True))
                    stream.pix_fmt, stream.width, stream.height = cfg.pix_fmt, arr.shape[2], arr.shape[1]
                    stream.time_base = Fraction(1, plan.fps)
                    for frame in arr:
                        out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                    out.mux(stream.encode())
                t_enc += time.perf_counter() - a
    return t_enc, t_read


def _import_lerobot() -> float:
    a = time.perf_counter()
    import lerobot.datasets.lerobot_dataset  # noqa: F401

    return time.perf_counter() - a


def worker_startup() -> float:
    """Seconds for one fresh spawned worker to start and import LeRobot: the fixed cost of --workers > 1."""
    import multiprocessing as mp

    a = time.perf_counter()
    with mp.get_context("spawn").Pool(1) as pool:
        pool.apply(_import_lerobot)
    return time.perf_counter() - a


def bench(name: str, make_plan, work: Path) -> list[str]:
    plan = make_plan()
    frames = None
    rows = []
    for workers in (1, 2):
        root = work / f"{name}_w{workers}"
        a = time.perf_counter()
        summary = plan.write(root, f"bench/{name}", workers=workers)
        dt = time.perf_counter() - a
        frames = summary.frames
        rows.append((f"ingest, {workers} worker{'s' if workers > 1 else ''}", dt))
    rows.append(("add_frame loop (stock LeRobotDataset)", add_frame_loop(plan, work / f"{name}_loop")))
    t_enc, t_read = encoder_floor(plan)
    rows.append(("reading + decoding the source only", t_read))
    rows.append(("encoder floor (PyAV AV1, LeRobot defaults)", t_enc))
    cams = sum(1 for ft in plan.features.values() if ft["dtype"] == "video")
    out = [f"{name}: {len(plan.jobs)} episodes, {frames} dataset frames x {cams} camera(s)"]
    for label, dt in rows:
        out.append(f"  {label:45s} {dt:7.1f} s  {frames / dt:7.1f} frames/s")
    out.append(f"  ingest (1 worker) runs at {rows[-1][1] / rows[0][1]:.0%} of the encoder floor's speed")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    # import LeRobot before timing anything: its import (seconds) would otherwise land on the first measurement.
    # Worker processes (2 workers) still pay it: that is part of what a user waits for.
    import lerobot.datasets.lerobot_dataset  # noqa: F401

    from glam_lerobot.ingest import rosbag, umi

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ingest_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        a = time.perf_counter()
        make_umi(work / "dataset.zarr.zip", args.episodes, args.seconds, args.size)
        bags = work / "bags"
        bags.mkdir()
        make_bags(bags, args.episodes, args.seconds, args.size)
        print(f"inputs written in {time.perf_counter() - a:.1f} s under {work}", flush=True)
        mapping = rosbag.load_mapping()
        mapping["cameras"]["overhead"] = "/camera_overhead/color/image_raw"
        lines = bench("umi", lambda: umi.plan([work / "dataset.zarr.zip"]), work)
        lines += bench("rosbag", lambda: rosbag.plan([bags], mapping=mapping), work)
        print(
            f"CPU cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f}; a spawned worker "
            f"takes {worker_startup():.1f} s to start and import LeRobot (paid once per worker with --workers > 1)"
        )
        print("\n".join(lines))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
