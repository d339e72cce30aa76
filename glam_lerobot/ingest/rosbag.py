"""ROS 1 (.bag) and ROS 2 (mcap or sqlite3) bags of Kinova teleop -> episodes in the canonical schema.

One bag is one episode. Bags are read with `rosbags` (no ROS install): a YAML mapping (default:
kinova_kortex.yaml beside this file) names the joint-state, gripper, optional command / ee-pose topics per arm and
the camera topics. All streams are put on the dataset's fps grid, which starts at the latest first sample of any
stream and ends at the earliest last one, by picking for each grid time the `nearest` sample or the `previous` one
(mapping key `sync`). Columns:
  observation.state   per arm: 7 joint positions + gripper opening in metres (from the gripper joint, linearly
                      between the mapping's `open` and `closed` positions)
  action              per arm: the command topic's joint targets sampled on the grid when the bag has one, else the
                      next synchronised joint state (the last frame repeats its own state); gripper command in
                      [0, 1] (1 = closed) = how closed the gripper is at the next frame
  observation.ee_pose per arm: the ee pose topic if mapped, else Gen3 forward kinematics + tcp_offset; + opening
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from glam_lerobot import schema
from glam_lerobot.ingest import IngestPlan, validate
from glam_lerobot.ingest.resample import SYNC_MODES, grid_times, resize_images, sample_indices
from glam_lerobot.writing import EpisodeError

DEFAULT_MAPPING = "kinova_kortex.yaml"
BAG_SUFFIXES = (".bag", ".mcap", ".db3")  # ROS 1, ROS 2 mcap, ROS 2 sqlite3 (a ROS 2 bag folder has metadata.yaml)
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_TYPES = ("sensor_msgs/msg/JointState",)
COMMAND_TYPES = ("sensor_msgs/msg/JointState", "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray")
POSE_TYPES = ("geometry_msgs/msg/PoseStamped",)


def load_mapping(path: Path | str | None = None) -> dict[str, Any]:
    """The topic mapping: a user's YAML file, or the packaged Kinova kortex + RealSense default."""
    if path is None:
        text = resources.files("glam_lerobot.ingest").joinpath(DEFAULT_MAPPING).read_text()
    else:
        text = Path(path).read_text()
    mapping = yaml.safe_load(text)
    where = path or DEFAULT_MAPPING
    if not mapping.get("arms") or not mapping.get("cameras"):
        raise ValueError(f"{where}: the mapping needs `arms` (one entry per arm) and `cameras`")
    for i, arm in enumerate(mapping["arms"]):
        for key in ("joint_states", "joints", "gripper"):
            if key not in arm:
                raise ValueError(f"{where}: arms[{i}] lacks `{key}`")
        if len(arm["joints"]) != schema.ARM_JOINTS:
            raise ValueError(f"{where}: arms[{i}].joints must name {schema.ARM_JOINTS} joints")
    for cam in mapping["cameras"]:
        if cam not in schema.CAMERAS:
            raise ValueError(f"{where}: camera {cam!r} must be one of {schema.CAMERAS}")
    mapping.setdefault("sync", "nearest")
    mapping.setdefault("time", "header")
    if mapping["sync"] not in SYNC_MODES:
        raise ValueError(f"{where}: sync must be one of {SYNC_MODES}")
    return mapping


def find_bags(paths: list[Path | str]) -> list[Path]:
    """Bags among the inputs: .bag / .mcap / .db3 files, ROS 2 bag folders (metadata.yaml), or folders of those."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "metadata.yaml").exists():
            children = sorted(c for c in p.iterdir() if c.suffix in BAG_SUFFIXES or (c / "metadata.yaml").exists())
            if not children:
                raise EpisodeError(p, None, "<file>", "folder holds no bags (.bag, .mcap, .db3 or ROS 2 bag folders)")
            out += children
        else:
            out.append(p)
    return out


def _topics_needed(mapping: dict) -> dict[str, tuple[str, ...]]:
    """{topic: accepted message types} for every topic the mapping reads."""
    need: dict[str, tuple[str, ...]] = {}
    for arm in mapping["arms"]:
        need[arm["joint_states"]] = JOINT_TYPES
        need[arm["gripper"]["topic"]] = JOINT_TYPES
        if arm.get("command"):
            need[arm["command"]] = COMMAND_TYPES
        if arm.get("ee_pose"):
            need[arm["ee_pose"]] = POSE_TYPES
    for topic in mapping["cameras"].values():
        need[topic] = IMAGE_TYPES
    return need


def open_bag(path: Path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise EpisodeError(path, None, "<file>", "no such file or folder")
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as exc:  # a truncated or foreign file
        raise EpisodeError(path, None, "<file>", f"not a readable ROS bag ({type(exc).__name__}: {exc})") from exc
    return reader


def _check_topics(reader, path: Path, mapping: dict, episode: int) -> None:
    have = {c.topic: c.msgtype for c in reader.connections}
    for topic, types in _topics_needed(mapping).items():
        if topic not in have:
            raise EpisodeError(path, episode, topic, f"topic missing from the bag (it has: {', '.join(sorted(have))})")
        if have[topic] not in types:
            raise EpisodeError(path, episode, topic, f"has type {have[topic]}, expected one of {types}")


def plan(
    paths: list[Path | str],
    *,
    mapping: dict | Path | str | None = None,
    fps: int = schema.DEFAULT_FPS,
    image_size: tuple[int, int] | None = None,
    task: str = "Kinova teleoperation",
    sync: str | None = None,
    max_gap: float | None = None,
    split_at_gaps: bool = False,
) -> IngestPlan:
    """One job per bag (split_at_gaps: one episode per piece of a bag between topics' silences longer than the
    gap limit). Checks topics and types of every bag; reads the first image of each camera for the size."""
    from glam_lerobot import provenance

    mapping = mapping if isinstance(mapping, dict) else load_mapping(mapping)
    if sync:
        if sync not in SYNC_MODES:
            raise ValueError(f"--sync must be one of {SYNC_MODES}")
        mapping = {**mapping, "sync": sync}
    if max_gap is not None:
        if max_gap <= 0:
            raise ValueError("--max-gap must be a positive number of seconds")
        mapping = {**mapping, "max_gap": float(max_gap)}
    if split_at_gaps:
        mapping = {**mapping, "split_at_gaps": True}
    bags = find_bags(paths)
    jobs, sizes = [], {}
    for e, path in enumerate(bags):
        job = {
            "file": str(path),
            "episode": e,
            "fps": fps,
            "mapping": mapping,
            "task": task,
            "bad": None,
            "resize": list(image_size) if image_size else None,
        }
        try:
            reader = open_bag(path)
            try:
                _check_topics(reader, path, mapping, e)
                if not sizes and not image_size:
                    sizes = _first_image_sizes(reader, mapping, path, e)
            finally:
                reader.close()
        except EpisodeError as exc:
            job["bad"] = validate.as_problem(exc)
        jobs.append(job)
    if image_size:
        sizes = {cam: tuple(image_size) for cam in mapping["cameras"]}
    if not sizes:
        raise EpisodeError(
            bags[0],
            0,
            "<file>",
            "no readable bag to take the camera image size from: "
            + "; ".join(f"{j['file']}: {j['bad'][1]}" for j in jobs if j["bad"]),
        )
    if len(set(sizes.values())) > 1:
        raise EpisodeError(bags[0], 0, "cameras", f"cameras differ in size {sizes}: pass --image-size HxW")
    hw = next(iter(sizes.values()))
    for job in jobs:
        job["image_hw"] = list(hw)
    arms = len(mapping["arms"])
    features = schema.features(arms=arms, image_size=hw, cameras=tuple(mapping["cameras"]), robot=True)
    meta = {
        "embodiment": mapping.get("embodiment", "kinova_gen3"),
        "arms": arms,
        "task": task,
        "source": {
            "format": "rosbag",
            "files": provenance.file_records(_files_of(bags)),
            "mapping": mapping,
            "fps": fps,
            "action": "command topic"
            if any(a.get("command") for a in mapping["arms"])
            else "next synchronised joint state (joint position targets); gripper command = closedness at t+1",
        },
    }
    return IngestPlan(
        fps=fps,
        features=features,
        jobs=jobs,
        produce=produce,
        glam_meta=meta,
        robot_type=mapping.get("embodiment", "kinova_gen3"),
    )


def _files_of(bags: list[Path]) -> list[Path]:
    out = []
    for b in bags:
        out += sorted(f for f in b.rglob("*") if f.is_file()) if b.is_dir() else [b] if b.exists() else []
    return out


def _first_image_sizes(reader, mapping: dict, path: Path, episode: int) -> dict[str, tuple[int, int]]:
    sizes = {}
    for cam, topic in mapping["cameras"].items():
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            try:
                sizes[cam] = decode_image(reader.deserialize(raw, conn.msgtype), conn.msgtype).shape[:2]
            except ValueError as exc:  # e.g. an unsupported encoding: this bag is bad, not the whole run
                raise EpisodeError(path, episode, topic, f"first message: {exc}") from exc
            break
    return sizes


def decode_image(msg, msgtype: str) -> np.ndarray:
    """sensor_msgs Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage (jpeg, png) -> (H, W, 3) RGB uint8."""
    import cv2

    if msgtype.endswith("CompressedImage"):
        img = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc3": 3, "8uc1": 1}
    enc = msg.encoding.lower()
    if enc not in channels:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(channels)}, or jpeg/png)")
    ch = channels[enc]
    rows = np.frombuffer(msg.data, dtype=np.uint8)
    if rows.size != msg.step * msg.height:
        raise ValueError(f"image data has {rows.size} bytes, header says {msg.step}x{msg.height}")
    img = rows.reshape(msg.height, msg.step)[:, : msg.width * ch].reshape(msg.height, msg.width, ch)
    if enc == "rgb8":
        return img
    if enc in ("bgr8", "8uc3"):
        return np.ascontiguousarray(img[..., ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(img[..., :3])
    if enc == "bgra8":
        return np.ascontiguousarray(img[..., 2::-1])
    return np.repeat(img, 3, axis=2)


def _stamp(msg, log_time: int, use_header: bool) -> int:
    header = getattr(msg, "header", None)
    if use_header and header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns:
            return ns
    return int(log_time)


def _joint_values(msg, names: list[str], file, episode, topic) -> np.ndarray:
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise EpisodeError(file, episode, topic, f"joint(s) {missing} not in the message (it names {list(msg.name)})")
    return np.array([msg.position[index[n]] for n in names], dtype=np.float64)


def _command_values(msg, msgtype: str, names: list[str], file, episode, topic) -> np.ndarray:
    if msgtype.endswith("JointState"):
        return _joint_values(msg, names, file, episode, topic)
    if msgtype.endswith("JointTrajectory"):
        if not msg.points:
            raise EpisodeError(file, episode, topic, "trajectory message without points")
        index = {n: i for i, n in enumerate(msg.joint_names)}
        if any(n not in index for n in names):
            raise EpisodeError(file, episode, topic, f"joint names {list(msg.joint_names)} lack some of {names}")
        return np.array([msg.points[0].positions[index[n]] for n in names], dtype=np.float64)
    data = np.asarray(msg.data, dtype=np.float64)
    if len(data) < len(names):
        raise EpisodeError(file, episode, topic, f"{len(data)} values, expected {len(names)} joint targets")
    return data[: len(names)]


def produce(job: dict) -> dict:
    """Read one bag in two passes (low-dim streams and image stamps, then only the images the grid picks)."""
    validate.bad_job(job)
    path, e, mapping = Path(job["file"]), job["episode"], job["mapping"]
    use_header = mapping.get("time", "header") == "header"
    reader = open_bag(path)
    try:
        _check_topics(reader, path, mapping, e)
        streams = _read_lowdim(reader, path, e, mapping, use_header)
        spans, notes = _spans(streams, path, e, job["fps"])
        parts = [_assemble(reader, path, e, mapping, job, streams, t0, t1) for t0, t1 in spans]
        parts[0]["warnings"] = notes + parts[0]["warnings"]
        return parts if mapping.get("split_at_gaps") else parts[0]
    except EpisodeError:
        raise
    except Exception as exc:  # rosbags errors on a damaged bag mid-way
        raise EpisodeError(
            path, e, "<file>", f"bag could not be read to the end ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        reader.close()


def _read_lowdim(reader, path, e, mapping, use_header) -> dict[str, dict]:
    """{stream name: {"t": int ns array, "v": values}} for joints, gripper, command, ee pose of each arm, and
    {"t"} only (message stamps) for each camera."""
    by_topic: dict[str, list] = {}
    for conn in reader.connections:
        if conn.topic in _topics_needed(mapping):
            by_topic.setdefault(conn.topic, [])
    image_topics = set(mapping["cameras"].values())
    for conn, log_time, raw in reader.messages(connections=[c for c in reader.connections if c.topic in by_topic]):
        msg = reader.deserialize(raw, conn.msgtype)
        by_topic[conn.topic].append(
            (_stamp(msg, log_time, use_header), None if conn.topic in image_topics else msg, conn.msgtype, log_time)
        )
    streams: dict[str, dict] = {}

    def stream(name: str, topic: str, values_of) -> None:
        samples = by_topic[topic]
        if not samples:
            raise EpisodeError(path, e, topic, "topic has no messages in this bag")
        t = np.array([s[0] for s in samples], dtype=np.int64)
        validate.monotonic((t - t[0]) / 1e9, path, e, topic)
        gaps = validate.continuity(
            t,
            np.array([s[3] for s in samples], dtype=np.int64),
            path,
            e,
            topic,
            mapping.get("max_gap"),
            allow_gaps=bool(mapping.get("split_at_gaps")),
        )
        values = np.stack([values_of(s[1], s[2]) for s in samples]) if values_of else None
        if values is not None:
            validate.finite(values, path, e, topic)
        streams[name] = {"t": t, "v": values, "topic": topic, "gaps": gaps}

    for a, arm in enumerate(mapping["arms"]):
        stream(
            f"arm{a}.joints",
            arm["joint_states"],
            lambda m, _t, arm=arm: _joint_values(m, arm["joints"], path, e, arm["joint_states"]),
        )
        g = arm["gripper"]
        stream(f"arm{a}.gripper", g["topic"], lambda m, _t, g=g: _joint_values(m, [g["joint"]], path, e, g["topic"]))
        if arm.get("command"):
            stream(
                f"arm{a}.command",
                arm["command"],
                lambda m, t, arm=arm: _command_values(m, t, arm["joints"], path, e, arm["command"]),
            )
        if arm.get("ee_pose"):
            stream(
                f"arm{a}.ee_pose",
                arm["ee_pose"],
                lambda m, _t: np.array(
                    [
                        m.pose.position.x,
                        m.pose.position.y,
                        m.pose.position.z,
                        m.pose.orientation.x,
                        m.pose.orientation.y,
                        m.pose.orientation.z,
                        m.pose.orientation.w,
                    ]
                ),
            )
    for cam, topic in mapping["cameras"].items():
        stream(f"camera.{cam}", topic, None)
    return streams


def _spans(streams: dict, path, e, fps: int) -> tuple[list[tuple[int, int]], list[str]]:
    """The time spans (ns) to write: the one all topics cover, cut where any topic went silent (the gaps that
    --split-at-gaps lets through). Pieces shorter than two frames are dropped, and said so."""
    t0 = max(int(s["t"][0]) for s in streams.values())
    t1 = min(int(s["t"][-1]) for s in streams.values())
    if t1 <= t0:
        raise EpisodeError(path, e, "<streams>", "the topics do not overlap in time")
    cuts = sorted((a, b, s["topic"]) for s in streams.values() for a, b in s["gaps"] if b > t0 and a < t1)
    spans, notes, start = [], [], t0
    for a, b, topic in cuts:
        if a > start:
            spans.append((start, a))
        start = max(start, b)
        notes.append(f"split at a {(b - a) / 1e9:.2f} s gap in {topic} at {(a - t0) / 1e9:.2f} s")
    if t1 > start:
        spans.append((start, t1))
    long_enough = [(a, b) for a, b in spans if len(grid_times(0.0, (b - a) / 1e9, fps)) >= 2]
    if not long_enough:
        what = "no part between its gaps is" if cuts else "shorter than"
        raise EpisodeError(path, e, "<streams>", f"{what} two frames at {fps} fps")
    if len(long_enough) < len(spans):
        notes.append(f"{len(spans) - len(long_enough)} piece(s) between gaps shorter than two frames dropped")
    if cuts:
        notes.append(f"written as {len(long_enough)} episodes")
    return long_enough, notes


def _assemble(reader, path, e, mapping, job, streams, t0: int, t1: int) -> dict:
    """One episode from the streams' samples over [t0, t1] (ns), on the fps grid from t0."""
    from glam_lerobot.ingest.kinova_fk import forward_kinematics
    from glam_lerobot.rotations import ee_pose, matrix_to_6d, quat_to_6d

    grid = grid_times(0.0, (t1 - t0) / 1e9, job["fps"])
    pick = {name: sample_indices((s["t"] - t0) / 1e9, grid, mapping["sync"]) for name, s in streams.items()}

    state, action, poses = [], [], []
    for a, arm in enumerate(mapping["arms"]):
        g = arm["gripper"]
        joints = streams[f"arm{a}.joints"]["v"][pick[f"arm{a}.joints"]]
        knuckle = streams[f"arm{a}.gripper"]["v"][pick[f"arm{a}.gripper"], 0]
        closedness = np.clip((knuckle - g["open"]) / (g["closed"] - g["open"]), 0.0, 1.0)
        opening = schema.GRIPPER_MAX_OPENING * (1.0 - closedness)
        if arm.get("command"):
            target = streams[f"arm{a}.command"]["v"][pick[f"arm{a}.command"]]
        else:
            target = np.concatenate([joints[1:], joints[-1:]])
        next_closed = np.concatenate([closedness[1:], closedness[-1:]])
        state.append(np.concatenate([joints, opening[:, None]], 1))
        action.append(np.concatenate([target, next_closed[:, None]], 1))
        if arm.get("ee_pose"):
            p = streams[f"arm{a}.ee_pose"]["v"][pick[f"arm{a}.ee_pose"]]
            poses.append(ee_pose(p[:, :3], quat_to_6d(p[:, 3:]), opening))
        else:
            pos, rot = forward_kinematics(joints, tcp_offset=float(arm.get("tcp_offset", 0.0)))
            poses.append(ee_pose(pos, matrix_to_6d(rot), opening))
    frames = {
        schema.STATE: np.concatenate(state, 1).astype(np.float32),
        schema.ACTION: np.concatenate(action, 1).astype(np.float32),
        schema.EE_POSE: np.concatenate(poses, 1).astype(np.float32),
    }
    warnings = []
    for cam, topic in mapping["cameras"].items():
        t = streams[f"camera.{cam}"]["t"]
        t = t[(t >= t0) & (t <= t1)]  # this episode's span: a gap it was cut at is not a slow camera
        rate = (len(t) - 1) / max((t[-1] - t[0]) / 1e9, 1e-9) if len(t) > 1 else 0.0
        if rate < 0.9 * job["fps"]:  # the grid asks for more frames than the camera sent: frames repeat
            warnings.append(
                f"{topic} runs at {rate:.1f} Hz, below --fps {job['fps']}: frames repeat (each camera "
                f"frame is used ~{job['fps'] / rate:.1f} times)"
            )
    # second pass: decode only the image messages the grid picked
    for cam, topic in mapping["cameras"].items():
        wanted = pick[f"camera.{cam}"]
        order = {int(i): [] for i in np.unique(wanted)}
        for j, i in enumerate(wanted):
            order[int(i)].append(j)
        images: list = [None] * len(grid)
        conns = [c for c in reader.connections if c.topic == topic]
        for k, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
            if k in order:
                try:
                    img = decode_image(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                except ValueError as exc:
                    raise EpisodeError(path, e, topic, f"message {k}: {exc}") from exc
                img = resize_images(img[None], tuple(job["resize"]) if job["resize"] else None)[0]
                if img.shape[:2] != tuple(job["image_hw"]):
                    raise EpisodeError(
                        path,
                        e,
                        topic,
                        f"message {k} is {img.shape[0]}x{img.shape[1]}, the dataset's "
                        f"frames are {job['image_hw'][0]}x{job['image_hw'][1]} (--image-size resizes)",
                    )
                for j in order[k]:
                    images[j] = img
            if k >= max(order):
                break
        frames[schema.image_key(cam)] = np.stack(images)
    return {"task": job["task"], "frames": frames, "warnings": warnings}
