"""A lab's own rig: `ingest inspect` shows what its bags hold, `--write-mapping` guesses a mapping, and the bags
ingest with that mapping unedited. The bags use none of our default names: two RealSense cameras under their own
namespaces (one raw, one compressed, plus a depth stream to leave out) and a JointTrajectory command topic whose
header stamps are all zero. Written with rosbags' own writers as ROS 1, ROS 2 sqlite3 and ROS 2 mcap."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin
from rosbags.typesys import Stores, get_typestore
from test_ingest_rosbag import T0, write_events
from typer.testing import CliRunner

from glam_lerobot import schema

JOINTS = [f"joint_{i}" for i in range(1, 8)]
KNUCKLE = "robotiq_85_left_knuckle_joint"
FRONT, OVERHEAD = "/camera_front/color/image_raw", "/camera_overhead/color/image_raw/compressed"
DEPTH, COMMAND = "/camera_front/depth/image_rect_raw", "/arm_controller/joint_trajectory"


def target_at(t: float) -> np.ndarray:
    return np.array([0.2 * np.cos(t + i) + 0.1 * i for i in range(7)])


def write_lab_bag(path, ros: int, storage=StoragePlugin.MCAP, seconds: float = 1.2):
    ts = get_typestore(Stores.ROS1_NOETIC if ros == 1 else Stores.ROS2_HUMBLE)
    T = ts.types

    def header(ns):
        stamp = T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        h = T["std_msgs/msg/Header"]
        return h(seq=0, stamp=stamp, frame_id="") if ros == 1 else h(stamp=stamp, frame_id="")

    def image(head, img, encoding):
        h, w, c = img.shape
        return T["sensor_msgs/msg/Image"](
            header=head, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * c, data=img.ravel()
        )

    events = []
    for t in np.arange(0, seconds, 1 / 40):
        js = T["sensor_msgs/msg/JointState"](
            header=header(T0 + int(t * 1e9)),
            name=[*JOINTS, KNUCKLE],
            position=np.array([*(0.9 * target_at(t)), 0.3]),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        events.append((t, "/joint_states", "sensor_msgs/msg/JointState", js))
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=target_at(t),
            velocities=np.zeros(0),
            accelerations=np.zeros(0),
            effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0),
        )
        cmd = T["trajectory_msgs/msg/JointTrajectory"](header=header(0), joint_names=JOINTS, points=[point])
        events.append((t, COMMAND, "trajectory_msgs/msg/JointTrajectory", cmd))  # zero stamps: bag time is used
    for k, t in enumerate(np.arange(0, seconds, 1 / 15)):
        img = np.full((32, 40, 3), 20 + 7 * k, np.uint8)
        events.append((t, FRONT, "sensor_msgs/msg/Image", image(header(T0 + int(t * 1e9)), img, "rgb8")))
        ok, jpg = cv2.imencode(".png", img[..., ::-1])
        comp = T["sensor_msgs/msg/CompressedImage"](header=header(T0 + int(t * 1e9)), format="png", data=jpg.ravel())
        events.append((t, OVERHEAD, "sensor_msgs/msg/CompressedImage", comp))
        depth = np.zeros((32, 40, 1), np.uint8)
        events.append((t, DEPTH, "sensor_msgs/msg/Image", image(header(T0 + int(t * 1e9)), depth, "mono8")))
    return write_events(path, ros, storage, ts, events, receive_delay_ns=2_000_000)


@pytest.fixture(scope="module")
def lab_bags(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab")
    return [
        write_lab_bag(d / "ep0.bag", 1),
        write_lab_bag(d / "ep1_sqlite", 2, StoragePlugin.SQLITE3),
        write_lab_bag(d / "ep2_mcap", 2, StoragePlugin.MCAP),
    ]


def cli(*args):
    from glam_lerobot.cli import app

    return CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "200"})  # a wide terminal: rows unwrapped


def test_inspect_lists_every_topic_with_rates_stamps_and_names(lab_bags):
    res = cli("ingest", "inspect", *lab_bags, "--json")
    assert res.exit_code == 0, res.output
    reports = json.loads(res.output)
    assert [r["kind"] for r in reports] == ["rosbag"] * 3
    for r in reports:
        topics = {t["topic"]: t for t in r["topics"]}
        assert set(topics) == {"/joint_states", COMMAND, FRONT, OVERHEAD, DEPTH}
        assert topics["/joint_states"]["joint_names"] == [*JOINTS, KNUCKLE]
        assert topics["/joint_states"]["rate_hz"] == pytest.approx(40, rel=0.02)
        assert topics[COMMAND]["header"]["zero_stamps"] == topics[COMMAND]["count"] == 48
        assert topics["/joint_states"]["header"]["zero_stamps"] == 0
        assert topics[OVERHEAD]["image"] == {"encoding": "png", "height": 32, "width": 40}
        assert topics[FRONT]["image"]["encoding"] == "rgb8"
    table = cli("ingest", "inspect", lab_bags[0])
    assert table.exit_code == 0 and "48 zero stamps" in table.output


def test_the_written_mapping_ingests_the_lab_bags_without_edits(lab_bags, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    mapping = tmp_path / "rig.yaml"
    res = cli("ingest", "inspect", *lab_bags, "--write-mapping", mapping)
    assert res.exit_code == 0, res.output
    text = mapping.read_text()
    assert "zero header stamps" in text and "(by its name)" in text  # the guesses are explained
    m = yaml.safe_load(text)
    assert m["cameras"] == {"overhead": OVERHEAD, "front": FRONT}  # depth left out, names matched
    assert m["arms"][0]["command"] == COMMAND and m["arms"][0]["gripper"]["joint"] == KNUCKLE

    out = tmp_path / "lab"
    res = cli("ingest", "kinova", *lab_bags, "--mapping", mapping, "--root", out, "--repo-id", "lab/rig")
    assert res.exit_code == 0, res.output
    ds = LeRobotDataset("lab/rig", root=out, video_backend="pyav")
    assert ds.meta.total_episodes == 3
    assert set(ds.meta.camera_keys) == {schema.image_key("overhead"), schema.image_key("front")}
    item = ds[3]  # episode 0, frame 3: the action is the command topic's joint targets (not the 0.9x state)
    t = float(item["timestamp"])
    np.testing.assert_allclose(item[schema.ACTION].numpy()[:7], target_at(t), atol=0.03)


def test_without_a_gen3_joint_state_the_guess_says_what_it_saw(tmp_path):
    from glam_lerobot.ingest.inspect import guess_mapping

    report = {
        "kind": "rosbag",
        "topics": [{"topic": "/js", "type": "sensor_msgs/msg/JointState", "joint_names": ["a"]}],
    }
    with pytest.raises(ValueError, match=r"joint_1 .. joint_7.*/js \['a'\]"):
        guess_mapping([report])
    res = cli("ingest", "inspect", tmp_path / "missing.bag")
    assert res.exit_code == 1 and "no such file" in res.output


def test_inspect_reads_umi_buffers_and_hdf5_files_too(tmp_path):
    from test_ingest_hdf5 import write_robomimic
    from test_ingest_umi import ENDS, write_buffer

    buffer = write_buffer(tmp_path / "cups.zarr.zip")
    demos = tmp_path / "demos.hdf5"
    write_robomimic(demos, lengths=(30, 24))
    res = cli("ingest", "inspect", buffer, demos, "--json")
    assert res.exit_code == 0, res.output
    umi, h5 = json.loads(res.output)
    assert umi["kind"] == "umi" and umi["episodes"] == len(ENDS) and umi["frames"] == ENDS[-1]
    assert umi["robots"] == [0, 1] and umi["fps"] == pytest.approx(59.94)
    assert {a["name"] for a in umi["arrays"]} >= {"data/robot0_eef_pos", "data/camera0_rgb"}
    assert h5["kind"] == "hdf5" and h5["layout"] == "robomimic" and h5["episodes"] == 2
    wrong = cli("ingest", "inspect", buffer, "--write-mapping", tmp_path / "m.yaml")
    assert wrong.exit_code == 1 and "needs at least one ROS bag" in wrong.output
