"""What a raw recording holds, before ingesting it: `glam-lerobot ingest inspect FILE...`.

    inspect_file(path) -> dict            # kind: rosbag | umi | hdf5, and what that kind has
    guess_mapping(bag_reports) -> (mapping, notes)
    mapping_yaml(mapping, notes) -> str   # a rosbag mapping with a comment on every guess

For bags: every topic with message type, count, rate, first/last time, header-stamp quality (zero stamps,
stamps running backwards, gaps of more than 5 median periods), image encoding and size, JointState joint names.
For UMI replay buffers: arrays, shapes, chunking, episodes, fps. For HDF5: the layout recognised and its keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot.ingest import rosbag

GAP_PERIODS = 5  # as validate.continuity: a gap of more than 5 median periods is a stall
GEN3_JOINTS = [f"joint_{i}" for i in range(1, 8)]
KNUCKLES = {"robotiq_85_left_knuckle_joint": (0.0, 0.8), "finger_joint": (0.0, 0.8)}  # ros2_kortex, ros_kortex


def kind_of(path: Path) -> str:
    if path.suffix in (".h5", ".hdf5"):
        return "hdf5"
    if path.suffix == ".zip" or path.name.endswith(".zarr") or (path / ".zgroup").exists():
        return "umi"
    if path.suffix in rosbag.BAG_SUFFIXES or (path / "metadata.yaml").exists():
        return "rosbag"
    raise ValueError(
        f"{path}: not a recording ingest reads (ROS bag .bag/.mcap/.db3 or bag folder, UMI .zarr/.zarr.zip, HDF5 .hdf5)"
    )


def inspect_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    kind = kind_of(path)
    return {"path": str(path), "kind": kind, **{"rosbag": _bag, "umi": _umi, "hdf5": _hdf5}[kind](path)}


def _bag(path: Path) -> dict:
    reader = rosbag.open_bag(path)
    topics = []
    try:
        for conn in sorted(reader.connections, key=lambda c: c.topic):
            log_t, head_t, first = [], [], None
            for c, t, raw in reader.messages(connections=[conn]):
                msg = reader.deserialize(raw, c.msgtype)
                first = msg if first is None else first
                log_t.append(int(t))
                h = getattr(msg, "header", None)
                head_t.append(int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec) if h is not None else None)
            topics.append(_topic_report(conn.topic, conn.msgtype, np.asarray(log_t), head_t, first))
    finally:
        reader.close()
    return {"topics": topics}


def _topic_report(topic: str, msgtype: str, log_t: np.ndarray, head_t: list, first) -> dict:
    n = len(log_t)
    span = (log_t[-1] - log_t[0]) / 1e9 if n > 1 else 0.0
    out: dict[str, Any] = {
        "topic": topic,
        "type": msgtype,
        "count": n,
        "rate_hz": round((n - 1) / span, 2) if span > 0 else None,
        "first_s": log_t[0] / 1e9 if n else None,
        "last_s": log_t[-1] / 1e9 if n else None,
    }
    if any(h is not None for h in head_t):
        stamps = np.asarray([h or 0 for h in head_t], dtype=np.int64)
        nonzero = stamps[stamps != 0]
        steps = np.diff(nonzero)
        median = np.median(steps) if len(steps) else 0
        out["header"] = {
            "zero_stamps": int((stamps == 0).sum()),
            "backwards": int((steps < 0).sum()),
            "gaps": int((steps > GAP_PERIODS * median).sum()) if median > 0 else 0,
            "offset_from_bag_s": round(float(np.median(log_t[stamps != 0] - nonzero)) / 1e9, 4)
            if len(nonzero)
            else None,
        }
    if first is not None and msgtype.endswith("JointState"):
        out["joint_names"] = list(first.name)
    if first is not None and msgtype.endswith("/Image"):
        out["image"] = {"encoding": first.encoding, "height": int(first.height), "width": int(first.width)}
    if first is not None and msgtype.endswith("CompressedImage"):
        try:
            h, w = rosbag.decode_image(first, msgtype).shape[:2]
            out["image"] = {"encoding": first.format, "height": int(h), "width": int(w)}
        except ValueError as exc:
            out["image"] = {"encoding": first.format, "error": str(exc)}
    return out


def _umi(path: Path) -> dict:
    from glam_lerobot.ingest import umi

    summary = umi.inspect(path)
    root = umi.open_buffer(path)
    arrays = [
        {"name": f"data/{k}", "shape": list(a.shape), "dtype": str(a.dtype), "chunks": list(a.chunks)}
        for k, a in sorted(root["data"].arrays())
    ]
    ends = summary["episode_ends"]
    lengths = np.diff([0, *ends])
    return {
        "arrays": arrays,
        "episodes": len(ends),
        "frames": summary["frames"],
        "episode_frames": {"min": int(lengths.min()), "max": int(lengths.max())},
        "fps": umi.UMI_FPS,
        "cameras": summary["cameras"],
        "robots": summary["robots"],
    }


def _hdf5(path: Path) -> dict:
    from glam_lerobot.ingest import hdf5

    with hdf5.open_file(path) as f:
        layout = hdf5.detect_layout(f, path)
        keys = []
        f.visititems(
            lambda name, obj: (
                keys.append({"name": name, "shape": list(obj.shape), "dtype": str(obj.dtype)})
                if hasattr(obj, "shape")
                else None
            )
        )
        episodes = len(hdf5.demo_names(f)) if layout == "robomimic" else 1
    return {"layout": layout, "episodes": episodes, "datasets": keys[:200]}


# ---------------------------------------------------------------- a mapping guessed from what the bags hold
def guess_mapping(reports: list[dict]) -> tuple[dict, list[str]]:
    """A rosbag mapping from the topics common to every bag, and the notes that say what was guessed and why."""
    bags = [r for r in reports if r["kind"] == "rosbag"]
    if not bags:
        raise ValueError("--write-mapping needs at least one ROS bag")
    common = set.intersection(*({t["topic"] for t in b["topics"]} for b in bags))
    topics = {t["topic"]: t for t in bags[0]["topics"] if t["topic"] in common}
    notes: list[str] = []
    js = {k: t for k, t in topics.items() if t["type"].endswith("JointState")}
    arm_topic = next((k for k, t in js.items() if set(GEN3_JOINTS) <= set(t.get("joint_names", []))), None)
    if arm_topic is None:
        raise ValueError(
            "no JointState topic names the Gen3's joint_1 .. joint_7 (JointState topics: "
            f"{', '.join(f'{k} {js[k].get("joint_names", [])[:8]}' for k in js) or 'none'})"
        )
    notes.append(f"joint_states: {arm_topic} (JointState with joint_1 .. joint_7)")
    grip_topic, knuckle = next(
        ((k, n) for k, t in js.items() for n in t.get("joint_names", []) if n in KNUCKLES), (None, None)
    )
    if grip_topic is None:
        raise ValueError(f"no JointState topic carries a 2F-85 knuckle joint ({', '.join(KNUCKLES)})")
    notes.append(f"gripper: {grip_topic} joint {knuckle} (the 2F-85 knuckle; open 0.0, closed 0.8 rad)")
    cmd_types = ("JointTrajectory", "Float64MultiArray")
    commands = [k for k, t in topics.items() if t["type"].endswith(cmd_types)]
    commands += [k for k, t in js.items() if k not in (arm_topic, grip_topic) and _says_command(k)]
    command = commands[0] if commands else None
    if command:
        notes.append(f"command: {command} ({topics[command]['type']}: joint position targets -> action)")
        zeros = topics[command].get("header", {}).get("zero_stamps", 0)
        if zeros:
            notes.append(f"{command} has {zeros} zero header stamps: `time: header` uses the bag time for those")
    else:
        notes.append("command: none found, so the action is the next synchronised joint state")
    poses = [k for k, t in topics.items() if t["type"].endswith("PoseStamped")]
    if poses:
        notes.append(f"ee_pose: {poses[0]} (PoseStamped)")
    cameras, cam_notes = _assign_cameras({k: t for k, t in topics.items() if "image" in t})
    notes += cam_notes
    if not cameras:
        raise ValueError("no Image or CompressedImage topic in every bag")
    mapping = {
        "embodiment": "kinova_gen3",
        "arms": [
            {
                "joint_states": arm_topic,
                "joints": GEN3_JOINTS,
                "gripper": {
                    "topic": grip_topic,
                    "joint": knuckle,
                    "open": KNUCKLES[knuckle][0],
                    "closed": KNUCKLES[knuckle][1],
                },
                "command": command,
                "ee_pose": poses[0] if poses else None,
                "tcp_offset": 0.145,
            }
        ],
        "cameras": cameras,
        "sync": "nearest",
        "time": "header",
    }
    if len(bags) > 1:
        notes.append(f"topics common to all {len(bags)} bags were used")
    return mapping, notes


def _says_command(topic: str) -> bool:
    return any(w in topic.lower() for w in ("command", "cmd", "target", "desired"))


def _assign_cameras(images: dict[str, dict]) -> tuple[dict[str, str], list[str]]:
    """overhead / front by name (overhead, top, bird | front, wrist-free side), else in topic order; one stream per
    camera namespace (raw preferred over compressed), depth streams left out."""
    streams: dict[str, str] = {}
    for topic in sorted(images):
        if "depth" in topic.lower():
            continue
        ns = topic.split("/")[1] if topic.count("/") > 1 else topic
        if ns not in streams or streams[ns].endswith("/compressed"):
            streams[ns] = topic
    cameras: dict[str, str] = {}
    notes = []
    for ns, topic in streams.items():
        name = ns.lower()
        for cam, words in (("overhead", ("overhead", "top", "bird")), ("front", ("front",))):
            if cam not in cameras and any(w in name for w in words):
                cameras[cam] = topic
                notes.append(f"camera {cam}: {topic} (by its name)")
                break
    for topic in [t for t in streams.values() if t not in cameras.values()]:
        free = [c for c in ("overhead", "front") if c not in cameras]
        if not free:
            notes.append(f"{topic}: left out (only two cameras, overhead and front, are in the schema)")
            continue
        cameras[free[0]] = topic
        notes.append(f"camera {free[0]}: {topic} (in topic order: its name says neither overhead nor front)")
    return dict(sorted(cameras.items(), key=lambda kv: kv[0] != "overhead")), notes


def mapping_yaml(mapping: dict, notes: list[str], sources: list[str]) -> str:
    import yaml

    head = [
        "# Topic mapping written by `glam-lerobot ingest inspect --write-mapping` from:",
        *[f"#   {s}" for s in sources],
        "# What was guessed, and why (check these before a large ingest):",
        *[f"#   - {n}" for n in notes],
        "# Use it with: glam-lerobot ingest rosbag BAGS... --mapping THIS_FILE --root OUT",
        "# The fields are those of glam_lerobot/ingest/kinova_kortex.yaml, which explains each one.",
    ]
    return "\n".join(head) + "\n" + yaml.safe_dump(mapping, sort_keys=False, default_flow_style=None)


def summary_rows(report: dict) -> list[list[str]]:
    """Table rows for the terminal: one per topic (bags), array (UMI) or dataset (HDF5)."""
    if report["kind"] == "rosbag":
        rows = []
        for t in report["topics"]:
            h = t.get("header") or {}
            quality = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in h.items() if k != "offset_from_bag_s" and v)
            detail = (
                t.get("image") and f"{t['image'].get('encoding')} {t['image'].get('width')}x{t['image'].get('height')}"
            )
            detail = detail or (", ".join(t["joint_names"]) if t.get("joint_names") else "")
            rows.append(
                [
                    t["topic"],
                    t["type"],
                    str(t["count"]),
                    f"{t['rate_hz'] or '-'}",
                    quality or ("ok" if h else "no header"),
                    detail,
                ]
            )
        return rows
    if report["kind"] == "umi":
        return [
            [a["name"], a["dtype"], "x".join(map(str, a["shape"])), "", "chunks " + "x".join(map(str, a["chunks"])), ""]
            for a in report["arrays"]
        ]
    return [[d["name"], d["dtype"], "x".join(map(str, d["shape"])), "", "", ""] for d in report["datasets"]]
