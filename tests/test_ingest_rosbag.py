"""A user ingests Kinova teleop bags: ROS 2 (mcap, sqlite3) and ROS 1, written here with rosbags' own writers."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from glam_lerobot import provenance, schema
from glam_lerobot.ingest import rosbag
from glam_lerobot.ingest.kinova_fk import forward_kinematics
from glam_lerobot.rotations import matrix_to_6d
from glam_lerobot.writing import EpisodeError

HW = (32, 32)
JOINTS = [f"joint_{i}" for i in range(1, 8)]
KNUCKLE = "robotiq_85_left_knuckle_joint"
T0 = 1_700_000_000_000_000_000  # ns


def joints_at(t: float) -> np.ndarray:
    return np.array([0.1 * np.sin(t + i) + 0.3 * i for i in range(7)])


def knuckle_at(t: float) -> float:
    return min(0.8, 0.5 * t)


def image_at(k: int) -> np.ndarray:
    img = np.full((*HW, 3), 30 + 9 * k % 200, dtype=np.uint8)
    img[:4, :, 0] = 250  # a red band on top: checks RGB vs BGR
    return img


def write_bag(
    path,
    ros: int,
    *,
    storage=StoragePlugin.MCAP,
    compressed=False,
    seconds=1.5,
    command=False,
    shuffle_stamps=False,
    image_hw=HW,
    drop_camera=False,
    encoding="bgr8",
    camera_stall=None,
    joint_clock_jump=None,
):
    """Joint states at 40 Hz (header stamps 3 ms before the bag's receive time) and a camera at 15 Hz."""
    ts = get_typestore(Stores.ROS1_NOETIC if ros == 1 else Stores.ROS2_HUMBLE)
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]

    def header(ns):
        stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return Header(seq=0, stamp=stamp, frame_id="") if ros == 1 else Header(stamp=stamp, frame_id="")

    events = []
    js_t = np.arange(0, seconds, 1 / 40) + 0.004
    stamps = js_t.copy()
    if shuffle_stamps:  # two header stamps swapped, the bag's receive order unchanged
        stamps[20], stamps[21] = js_t[21], js_t[20]
    if joint_clock_jump:  # (at, by): from `at` on, the joint publisher's clock runs `by` seconds ahead
        stamps = np.where(js_t >= joint_clock_jump[0], stamps + joint_clock_jump[1], stamps)
    for t, stamp in zip(js_t, stamps, strict=True):
        msg = T["sensor_msgs/msg/JointState"](
            header=header(T0 + int(stamp * 1e9)),
            name=[*JOINTS, KNUCKLE],
            position=np.array([*joints_at(t), knuckle_at(t)]),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        events.append((t, "/joint_states", "sensor_msgs/msg/JointState", msg))
        if command:  # a joint-target stream slightly ahead of the state
            cmd = T["std_msgs/msg/Float64MultiArray"](
                layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=joints_at(t + 0.1)
            )
            events.append((t, "/cmd", "std_msgs/msg/Float64MultiArray", cmd))
    if not drop_camera:
        for k, t in enumerate(np.arange(0, seconds, 1 / 15)):
            if camera_stall and camera_stall[0] <= t < camera_stall[1]:
                continue  # the camera sends nothing
            img = image_at(k)
            if (image_hw != HW) and k == 3:
                img = np.zeros((*image_hw, 3), np.uint8)
            if compressed:
                ok, png = cv2.imencode(".png", img[..., ::-1])
                msg = T["sensor_msgs/msg/CompressedImage"](
                    header=header(T0 + int(t * 1e9)), format="rgb8; png", data=png.ravel()
                )
                typ = "sensor_msgs/msg/CompressedImage"
            else:
                h, w = img.shape[:2]
                raw = img[..., ::-1] if encoding == "bgr8" else img
                msg = T["sensor_msgs/msg/Image"](
                    header=header(T0 + int(t * 1e9)),
                    height=h,
                    width=w,
                    encoding=encoding,
                    is_bigendian=0,
                    step=w * 3,
                    data=np.ascontiguousarray(raw).ravel(),
                )
                typ = "sensor_msgs/msg/Image"
            events.append((t, "/camera/color/image_raw", typ, msg))
    return write_events(path, ros, storage, ts, events, receive_delay_ns=3_000_000)


def write_events(path, ros: int, storage, ts, events, receive_delay_ns: int):
    """Write (t seconds, topic, type, message) events with rosbags' writer, received `receive_delay_ns` after t."""
    ser = ts.serialize_ros1 if ros == 1 else ts.serialize_cdr
    writer = Writer1(path) if ros == 1 else Writer2(path, version=9, storage_plugin=storage)
    with writer:
        conns = {}
        for t, topic, typ, msg in sorted(events, key=lambda ev: ev[0]):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, typ, typestore=ts)
            writer.write(conns[topic], T0 + int(t * 1e9) + receive_delay_ns, ser(msg, typ))
    return path


def expected(seconds: float, fps: int = 10):
    """Brute force: for each grid time, the nearest joint-state sample and the nearest camera frame."""
    js_t = np.arange(0, seconds, 1 / 40) + 0.004
    cam_t = np.arange(0, seconds, 1 / 15)
    start, end = max(js_t[0], cam_t[0]), min(js_t[-1], cam_t[-1])
    grid = start + np.arange(int((end - start) * fps + 1e-6) + 1) / fps
    js = [js_t[np.argmin(np.abs(js_t - g))] for g in grid]
    cams = [int(np.argmin(np.abs(cam_t - g))) for g in grid]
    return js, cams


def test_ros2_mcap_and_sqlite3_bags_become_one_kinova_dataset(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    bags = tmp_path / "teleop"
    bags.mkdir()
    write_bag(bags / "demo_000", 2, storage=StoragePlugin.MCAP)
    write_bag(bags / "demo_001", 2, storage=StoragePlugin.SQLITE3, seconds=1.2, encoding="rgb8")
    plan = rosbag.plan([bags], fps=10, task="stack the cubes")
    assert [j["file"] for j in plan.jobs] == [str(bags / "demo_000"), str(bags / "demo_001")] and not plan.bad
    summary = plan.write(tmp_path / "kinova", "lab/kinova_teleop")
    assert (summary.episodes, summary.frames) == (2, 15 + 12)

    ds = LeRobotDataset("lab/kinova_teleop", root=tmp_path / "kinova", video_backend="pyav")
    assert ds.meta.robot_type == "kinova_gen3"
    starts = {0: 0, 1: 15}
    for ep, seconds in ((0, 1.5), (1, 1.2)):
        js, cams = expected(seconds)
        states = np.stack([ds[starts[ep] + j][schema.STATE].numpy() for j in range(len(js))])
        actions = np.stack([ds[starts[ep] + j][schema.ACTION].numpy() for j in range(len(js))])
        for j, (t, k) in enumerate(zip(js, cams, strict=True)):
            item = ds[starts[ep] + j]
            assert int(item["episode_index"]) == ep and abs(float(item["timestamp"]) - j / 10) < 1e-6
            np.testing.assert_allclose(states[j, :7], joints_at(t), atol=1e-6)
            opening = schema.GRIPPER_MAX_OPENING * (1 - knuckle_at(t) / 0.8)
            np.testing.assert_allclose(states[j, 7], opening, atol=1e-6)
            pos, rot = forward_kinematics(joints_at(t), tcp_offset=0.145)
            np.testing.assert_allclose(item[schema.EE_POSE].numpy(), [*pos, *matrix_to_6d(rot), opening], atol=1e-5)
            got = item[schema.image_key("front")].numpy().transpose(1, 2, 0) * 255
            assert np.abs(got - image_at(k)).mean() < 4, (ep, j)
        # no command topic: the action is the next synchronised state, the gripper command its closedness
        np.testing.assert_allclose(actions[:-1, :7], states[1:, :7], atol=1e-6)
        np.testing.assert_allclose(actions[-1, :7], states[-1, :7], atol=1e-6)
        np.testing.assert_allclose(actions[:-1, 7], 1 - states[1:, 7] / schema.GRIPPER_MAX_OPENING, atol=1e-5)

    # as a policy loads it: action chunks and image history across the episode boundary (LeRobot's timestamp checks)
    chunked = LeRobotDataset(
        "lab/kinova_teleop",
        root=tmp_path / "kinova",
        video_backend="pyav",
        delta_timestamps={schema.ACTION: [0, 0.1, 0.2], schema.image_key("front"): [-0.1, 0]},
    )
    last = chunked[14]  # the last frame of episode 0
    assert last["action_is_pad"].tolist() == [False, True, True]
    assert tuple(last[schema.image_key("front")].shape) == (2, 3, *HW)
    np.testing.assert_allclose(last[schema.ACTION][0].numpy(), ds[14][schema.ACTION].numpy())

    meta = provenance.read(tmp_path / "kinova")
    assert meta["source"]["format"] == "rosbag" and meta["source"]["mapping"]["cameras"] == {
        "front": "/camera/color/image_raw"
    }
    files = {f["path"]: f["sha256"] for f in meta["source"]["files"]}
    assert any(p.endswith(".mcap") for p in files) and any(p.endswith(".db3") for p in files)


def test_ros1_bag_with_compressed_images_and_a_command_topic(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    bag = write_bag(tmp_path / "demo.bag", 1, compressed=True, command=True)
    mapping = rosbag.load_mapping()
    mapping["arms"][0]["command"] = "/cmd"
    plan = rosbag.plan([bag], mapping=mapping, fps=10, image_size=(40, 40))
    plan.write(tmp_path / "ds", "lab/ros1")
    ds = LeRobotDataset("lab/ros1", root=tmp_path / "ds", video_backend="pyav")
    assert ds.features[schema.image_key("front")]["shape"] == (40, 40, 3)
    js, cams = expected(1.5)
    for j, (t, k) in enumerate(zip(js, cams, strict=True)):
        item = ds[j]
        np.testing.assert_allclose(item[schema.ACTION].numpy()[:7], joints_at(t + 0.1), atol=1e-6)
        img = item[schema.image_key("front")].numpy().transpose(1, 2, 0) * 255
        want = cv2.resize(image_at(k), (40, 40), interpolation=cv2.INTER_AREA).astype(np.float32)
        assert np.abs(img - want).mean() < 4  # PNG in the bag, resized, through AV1
        assert (img[0, :, 0] - img[0, :, 2]).mean() > 0.5 * (want[0, :, 0] - want[0, :, 2]).mean()  # RGB, not BGR


def test_a_stalled_camera_or_a_jumping_clock_is_refused_not_written_out_of_sync(tmp_path):
    """A camera silent for 3 s, a joint clock that jumps +2 s and stays: refused with file, topic and time."""
    stall = write_bag(tmp_path / "bags" / "a_stall", 2, seconds=6.0, camera_stall=(1.0, 4.0))
    jump = write_bag(tmp_path / "bags" / "b_jump", 2, seconds=4.0, joint_clock_jump=(2.0, 2.0))
    good = write_bag(tmp_path / "bags" / "c_good", 2, seconds=2.0)
    plan = rosbag.plan([tmp_path / "bags"], fps=10)
    with pytest.raises(EpisodeError, match=r"gap of 3\.0\d s without messages at 0\.9\d s") as err:
        plan.write(tmp_path / "out", "lab/bags")
    assert (err.value.file, err.value.field) == (str(stall), "/camera/color/image_raw")
    summary = plan.write(tmp_path / "out", "lab/bags", skip_bad=True)
    bad = "\n".join(summary.bad)
    assert summary.episodes == 1 and f"{jump}: episode 1: field '/joint_states': clock jump of +2.00 s at 1.9" in bad
    # a limit the user sets: the 3 s stall passes under --max-gap 5 (their call), the clock jump does not
    lenient = rosbag.plan([stall, good], fps=10, max_gap=5.0)
    assert lenient.write(tmp_path / "lenient", "lab/bags").episodes == 2
    # --fps 30 on a 15 Hz camera: written, with a warning in the summary
    fast = rosbag.plan([good], fps=30).write(tmp_path / "fast", "lab/bags")
    assert any("/camera/color/image_raw runs at 15.0 Hz, below --fps 30: frames repeat" in w for w in fast.warnings)
    assert any("warning" in line for line in fast.lines())


def test_split_at_gaps_writes_each_piece_of_a_stalled_bag_in_sync_and_still_refuses_a_clock_jump(tmp_path):
    """--split-at-gaps: the camera silent from 1 s to 4 s gives two episodes, each frame's image and state from the
    same moment (nothing bridged across the stall); a jumping clock is refused all the same."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    stall = write_bag(tmp_path / "stall", 2, seconds=6.0, camera_stall=(1.0, 4.0))
    summary = rosbag.plan([stall], fps=10, split_at_gaps=True).write(tmp_path / "ds", "lab/split")
    assert summary.episodes == 2
    assert any("split at a 3.0" in w and "/camera/color/image_raw at 0.9" in w for w in summary.warnings)
    assert not any("frames repeat" in w for w in summary.warnings)  # the stall is not a slow camera
    ds = LeRobotDataset("lab/split", root=tmp_path / "ds", video_backend="pyav")
    js_t = np.arange(0, 6.0, 1 / 40) + 0.004
    cam_t = np.array([t for t in np.arange(0, 6.0, 1 / 15) if not 1.0 <= t < 4.0])
    cam_k = np.array([k for k, t in enumerate(np.arange(0, 6.0, 1 / 15)) if not 1.0 <= t < 4.0])
    starts = [0.004, cam_t[cam_t >= 4.0][0]]  # each piece starts where every topic has data again
    ends = [cam_t[cam_t < 1.0][-1], min(js_t[-1], cam_t[-1])]
    index = np.asarray(ds.hf_dataset["episode_index"])
    for e, (start, end) in enumerate(zip(starts, ends, strict=True)):
        rows = np.flatnonzero(index == e)
        assert len(rows) == int((end - start) * 10 + 1e-6) + 1
        for j, row in enumerate(rows):
            g = start + j / 10
            item = ds[int(row)]
            t_js = js_t[np.argmin(np.abs(js_t - g))]
            np.testing.assert_allclose(item[schema.STATE].numpy()[:7], joints_at(t_js), atol=1e-6)
            d = np.abs(cam_t - g)
            nearest = np.flatnonzero(d <= d.min() + 1e-6)  # 10 fps on 15 Hz: every other grid time is a tie
            assert d.min() < 0.5 / 15 + 1e-6  # never an image from the other side of the stall
            img = item[schema.image_key("front")].numpy().transpose(1, 2, 0) * 255
            assert min(np.abs(img[8:] - image_at(cam_k[k])[8:]).mean() for k in nearest) < 4
    jump = write_bag(tmp_path / "jump", 2, seconds=4.0, joint_clock_jump=(2.0, 2.0))
    with pytest.raises(EpisodeError, match="clock jump of"):
        rosbag.plan([jump], fps=10, split_at_gaps=True).write(tmp_path / "jumped", "lab/split")


def test_an_unsupported_image_encoding_names_bag_and_topic_and_skip_bad_drops_only_that_bag(tmp_path):
    yuv = write_bag(tmp_path / "bags" / "a_yuv", 2, encoding="yuv422")  # the first bag, which gives the image size
    write_bag(tmp_path / "bags" / "b_good", 2)
    plan = rosbag.plan([tmp_path / "bags"], fps=10)
    assert [(j["file"], j["bad"][0]) for j in plan.bad] == [(str(yuv), "/camera/color/image_raw")]
    with pytest.raises(EpisodeError, match="unsupported image encoding 'yuv422'") as err:
        plan.write(tmp_path / "out", "lab/bags")
    assert (err.value.file, err.value.field) == (str(yuv), "/camera/color/image_raw")
    summary = plan.write(tmp_path / "out", "lab/bags", skip_bad=True)
    assert summary.episodes == 1 and "yuv422" in "\n".join(summary.bad)


def test_broken_bags_are_named_and_skip_bad_lists_them(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    good = write_bag(tmp_path / "bags" / "a_good", 2)
    no_cam = write_bag(tmp_path / "bags" / "b_no_camera", 2, drop_camera=True)
    back = write_bag(tmp_path / "bags" / "c_back_in_time", 2, shuffle_stamps=True)
    small = write_bag(tmp_path / "bags" / "d_small_image", 2, storage=StoragePlugin.SQLITE3, image_hw=(16, 16))
    ros1 = write_bag(tmp_path / "whole.bag", 1)
    cut = tmp_path / "bags" / "e_cut.bag"
    cut.write_bytes(ros1.read_bytes()[:5000])

    plan = rosbag.plan([tmp_path / "bags"], fps=10)
    assert {(j["file"], j["bad"][0]) for j in plan.bad} == {
        (str(no_cam), "/camera/color/image_raw"),
        (str(cut), "<file>"),
    }
    with pytest.raises(EpisodeError, match="topic missing from the bag") as err:
        plan.write(tmp_path / "out", "lab/bags")
    assert (err.value.file, err.value.episode) == (str(no_cam), 1)

    summary = plan.write(tmp_path / "out", "lab/bags", skip_bad=True)
    assert summary.episodes == 1
    bad = "\n".join(summary.bad)
    for path, field in (
        (no_cam, "/camera/color/image_raw"),
        (back, "/joint_states"),
        (small, "/camera/color/image_raw"),
        (cut, "<file>"),
    ):
        assert f"{path}: episode" in bad and f"field '{field}'" in bad, bad
    assert "go back in time at sample 21" in bad and "16x16" in bad
    assert LeRobotDataset("lab/bags", root=tmp_path / "out", video_backend="pyav").meta.total_episodes == 1
    shutil.rmtree(good)
