"""HDF5 episode files -> episodes in the canonical schema: the ALOHA layout and the robomimic layout.

ALOHA (one file per episode, as ALOHA's and ACT's recorders write it):
  /observations/qpos (T, 8*arms)            -> observation.state (Kinova Gen3: 7 joints + gripper opening, metres)
  /action (T, 8*arms)                       -> action (joint position targets + gripper command in [0, 1])
  /observations/images/<cam> (T, H, W, 3)   -> cameras per --camera-map (JPEG-compressed rows when the file's
                                               `compress` attribute is set, as ALOHA's real-robot recorder does)
  ee_pose comes from Gen3 forward kinematics of qpos. Columns are taken in the file's units, so a file must hold a
  Kinova Gen3 layout (8 values per arm); other widths are an error naming the field.
robomimic (one file, many demos: data/demo_k/obs/..., data/demo_k/actions; also robosuite and MimicGen rollouts):
  obs/robot{i}_eef_pos, obs/robot{i}_eef_quat (x, y, z, w)  -> observation.ee_pose (position, rotation 6D)
  obs/robot{i}_gripper_qpos                  -> gripper opening: 2 finger joints (Panda-like prismatic fingers) give
                                               q0 - q1; 6 joints (robosuite's Robotiq 2F-85) give 0.085*(1 - q0/0.8)
  obs/<camera>_image                          -> cameras per --camera-map (default agentview -> front)
  obs/robot{i}_joint_pos (7 joints)           -> observation.state when present for every arm; then `action` is the
                                               next resampled joint state + the recorded gripper command mapped from
                                               [-1 open, 1 closed] to [0, 1]
  robomimic's `actions` are OSC end-effector deltas, not joint targets: they are never written to `action`. Demos
  without joint positions are written without state and action, like UMI data (auxiliary, not target-robot data).
Both are resampled from their recording rate (--source-fps; robosuite 20 Hz, ALOHA 50 Hz) to the dataset's fps by
taking the nearest recorded step.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import schema
from glam_lerobot.ingest import IngestPlan, parse_camera_map, validate
from glam_lerobot.ingest.resample import resample_uniform, resize_images
from glam_lerobot.writing import EpisodeError

LAYOUTS = ("auto", "aloha", "robomimic")
SOURCE_FPS = {"aloha": 50.0, "robomimic": 20.0}
DEFAULT_CAMERA_MAP = {"aloha": {"cam_high": "overhead", "cam_low": "front"}, "robomimic": {"agentview": "front"}}


def open_file(path: Path | str):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EpisodeError(path, None, "<file>", "no such file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # truncated or not HDF5
        raise EpisodeError(path, None, "<file>", f"not a readable HDF5 file ({exc})") from exc


def detect_layout(f, path) -> str:
    if "observations" in f and "qpos" in f["observations"]:
        return "aloha"
    if "data" in f and any(k.startswith("demo") for k in f["data"]):
        return "robomimic"
    raise EpisodeError(path, None, "<layout>", "neither ALOHA (/observations/qpos) nor robomimic (data/demo_*)")


def demo_names(f) -> list[str]:
    return sorted(f["data"].keys(), key=lambda k: int(re.sub(r"\D", "", k) or 0))


def _need(group, key: str, file, episode, prefix: str):
    if key not in group:
        raise EpisodeError(file, episode, f"{prefix}{key}", f"missing (has: {', '.join(sorted(group.keys()))})")
    return group[key]


# ---------------------------------------------------------------- ALOHA


def _aloha_episode(f, path, episode, cmap) -> dict[str, Any]:
    """Checked description of an ALOHA file: arms, cameras present, length; raises EpisodeError."""
    obs = _need(f, "observations", path, episode, "/")
    qpos = _need(obs, "qpos", path, episode, "/observations/")
    action = _need(f, "action", path, episode, "/")
    images = _need(obs, "images", path, episode, "/observations/")
    if qpos.ndim != 2 or qpos.shape[1] % schema.STATE_DIM_PER_ARM:
        raise EpisodeError(
            path,
            episode,
            "/observations/qpos",
            f"shape {qpos.shape}: expected (T, 8 * arms), Kinova Gen3 joints + gripper per arm",
        )
    validate.width(action, qpos.shape[1], path, episode, "/action")
    cams = {c: cmap[c] for c in images if c in cmap}
    lengths = {"/observations/qpos": len(qpos), "/action": len(action)}
    lengths.update({f"/observations/images/{c}": len(images[c]) for c in cams})
    n = validate.same_length(lengths, path, episode)
    for field, ds in (("/observations/qpos", qpos), ("/action", action)):
        validate.finite(ds[:], path, episode, field)
    compressed = bool(f.attrs.get("compress", False))
    hw = {c: None if compressed else tuple(images[c].shape[1:3]) for c in cams}
    return {
        "arms": qpos.shape[1] // schema.STATE_DIM_PER_ARM,
        "cameras": cams,
        "length": n,
        "hw": hw,
        "compressed": compressed,
    }


def _aloha_frames(f, job) -> dict[str, np.ndarray]:
    from glam_lerobot.ingest.kinova_fk import forward_kinematics
    from glam_lerobot.rotations import ee_pose, matrix_to_6d

    idx = resample_uniform(job["length"], job["source_fps"], job["fps"])
    qpos = np.asarray(f["observations/qpos"][:], dtype=np.float64)[idx]
    action = np.asarray(f["action"][:], dtype=np.float64)[idx]
    poses = []
    for a in range(job["arms"]):
        arm = qpos[:, a * 8 : a * 8 + 8]
        pos, rot = forward_kinematics(arm[:, :7], tcp_offset=job["tcp_offset"])
        poses.append(ee_pose(pos, matrix_to_6d(rot), arm[:, 7]))
    frames = {
        schema.STATE: qpos.astype(np.float32),
        schema.ACTION: action.astype(np.float32),
        schema.EE_POSE: np.concatenate(poses, 1),
    }
    for cam, target in job["cameras"].items():
        field = f"/observations/images/{cam}"
        rows = f["observations/images"][cam]
        if job["compressed"]:
            import cv2

            imgs = []
            for i in idx:
                bgr = cv2.imdecode(np.asarray(rows[i], dtype=np.uint8).ravel(), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise EpisodeError(job["file"], job["episode"], field, f"frame {i} is not a decodable JPEG")
                imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            images = np.stack(imgs)
        else:
            images = np.asarray(rows[np.unique(idx)])[np.searchsorted(np.unique(idx), idx)]
        frames[schema.image_key(target)] = _sized(images, job, field)
    return frames


# ---------------------------------------------------------------- robomimic


def _gripper_opening(q: np.ndarray, file, episode, field) -> np.ndarray:
    if q.shape[1] == 2:
        return q[:, 0] - q[:, 1]
    if q.shape[1] == 6:
        return schema.GRIPPER_MAX_OPENING * (1.0 - np.clip(q[:, 0] / 0.8, 0.0, 1.0))
    raise EpisodeError(file, episode, field, f"{q.shape[1]} gripper joints: only 2 (prismatic) or 6 (2F-85) are known")


def _robomimic_episode(f, path, demo, cmap, robot: str) -> dict[str, Any]:
    group = f["data"][demo]
    prefix = f"data/{demo}/"
    obs = _need(group, "obs", path, demo, prefix)
    arms = sorted(int(m.group(1)) for k in obs if (m := re.fullmatch(r"robot(\d+)_eef_pos", k)))
    if not arms:
        raise EpisodeError(path, demo, f"{prefix}obs/robot0_eef_pos", "missing")
    lengths = {}
    for a in arms:
        for key, width in (("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", None)):
            ds = _need(obs, f"robot{a}_{key}", path, demo, f"{prefix}obs/")
            if width:
                validate.width(ds, width, path, demo, f"{prefix}obs/robot{a}_{key}")
            validate.finite(ds[:], path, demo, f"{prefix}obs/robot{a}_{key}")
            lengths[f"{prefix}obs/robot{a}_{key}"] = len(ds)
    has_joints = all(f"robot{a}_joint_pos" in obs and obs[f"robot{a}_joint_pos"].shape[1:] == (7,) for a in arms)
    with_robot = {"auto": has_joints, "yes": True, "no": False}[robot]
    if with_robot:
        for a in arms:
            ds = _need(obs, f"robot{a}_joint_pos", path, demo, f"{prefix}obs/")
            validate.width(ds, schema.ARM_JOINTS, path, demo, f"{prefix}obs/robot{a}_joint_pos")
            validate.finite(ds[:], path, demo, f"{prefix}obs/robot{a}_joint_pos")
            lengths[f"{prefix}obs/robot{a}_joint_pos"] = len(ds)
        actions = _need(group, "actions", path, demo, prefix)
        validate.finite(actions[:], path, demo, f"{prefix}actions")
        lengths[f"{prefix}actions"] = len(actions)
    cams = {c: cmap[c] for c in (k[: -len("_image")] for k in obs if k.endswith("_image")) if c in cmap}
    lengths.update({f"{prefix}obs/{c}_image": len(obs[f"{c}_image"]) for c in cams})
    n = validate.same_length(lengths, path, demo)
    hw = {c: tuple(obs[f"{c}_image"].shape[1:3]) for c in cams}
    return {
        "arms": len(arms),
        "arm_ids": arms,
        "cameras": cams,
        "length": n,
        "hw": hw,
        "robot": with_robot,
        "compressed": False,
    }


def _robomimic_frames(f, job) -> dict[str, np.ndarray]:
    from glam_lerobot.rotations import ee_pose, quat_to_6d

    demo, file = job["episode"], job["file"]
    obs = f["data"][demo]["obs"]
    idx = resample_uniform(job["length"], job["source_fps"], job["fps"])
    poses, state, action = [], [], []
    actions = np.asarray(f["data"][demo]["actions"][:], dtype=np.float64) if job["robot"] else None
    for k, a in enumerate(job["arm_ids"]):
        pos = np.asarray(obs[f"robot{a}_eef_pos"][:], dtype=np.float64)[idx]
        quat = np.asarray(obs[f"robot{a}_eef_quat"][:], dtype=np.float64)[idx]
        field = f"data/{demo}/obs/robot{a}_gripper_qpos"
        opening = _gripper_opening(
            np.asarray(obs[f"robot{a}_gripper_qpos"][:], dtype=np.float64)[idx], file, demo, field
        )
        poses.append(ee_pose(pos, quat_to_6d(quat), opening))
        if job["robot"]:
            joints = np.asarray(obs[f"robot{a}_joint_pos"][:], dtype=np.float64)[idx]
            state.append(np.concatenate([joints, opening[:, None]], 1))
            per_arm = actions.shape[1] // job["arms"]
            grip = (np.clip(actions[idx, (k + 1) * per_arm - 1], -1, 1) + 1) / 2  # robosuite: -1 open, 1 closed
            target = np.concatenate([joints[1:], joints[-1:]])
            action.append(np.concatenate([target, grip[:, None]], 1))
    frames = {schema.EE_POSE: np.concatenate(poses, 1)}
    if job["robot"]:
        frames[schema.STATE] = np.concatenate(state, 1).astype(np.float32)
        frames[schema.ACTION] = np.concatenate(action, 1).astype(np.float32)
    for cam, target in job["cameras"].items():
        field = f"data/{demo}/obs/{cam}_image"
        uniq = np.unique(idx)
        images = np.asarray(obs[f"{cam}_image"][uniq])[np.searchsorted(uniq, idx)]
        frames[schema.image_key(target)] = _sized(images, job, field)
    return frames


# ---------------------------------------------------------------- shared


def _sized(images: np.ndarray, job: dict, field: str) -> np.ndarray:
    images = resize_images(images, tuple(job["resize"]) if job["resize"] else None)
    return validate.image_size(images, tuple(job["image_hw"]), job["file"], job["episode"], field)


def plan(
    paths: list[Path | str],
    *,
    layout: str = "auto",
    fps: int = schema.DEFAULT_FPS,
    source_fps: float | None = None,
    camera_map: dict[str, str] | str | None = None,
    image_size: tuple[int, int] | None = None,
    task: str | None = None,
    robot: str = "auto",
    tcp_offset: float = 0.145,
) -> IngestPlan:
    """One job per ALOHA file or robomimic demo; every episode's keys, lengths and low-dim values are checked here."""
    from glam_lerobot import provenance

    if layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {LAYOUTS}")
    files = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.hdf5")) + sorted(p.glob("*.h5")) if p.is_dir() else [p]
    jobs, shape, env_name = [], None, None
    for i, path in enumerate(files):
        try:
            f = open_file(path)
        except EpisodeError as exc:
            jobs.append({"file": str(path), "episode": i, "bad": validate.as_problem(exc)})
            continue
        with f:
            kind = detect_layout(f, path) if layout == "auto" else layout
            cmap = parse_camera_map(camera_map) if camera_map is not None else DEFAULT_CAMERA_MAP[kind]
            if kind == "robomimic":
                env_name = env_name or json.loads(f["data"].attrs.get("env_args", "{}")).get("env_name")
                episodes = [(d, partial(_robomimic_episode, f, path, d, cmap, robot)) for d in demo_names(f)]
            else:
                episodes = [(i, partial(_aloha_episode, f, path, i, cmap))]
            for episode, describe in episodes:
                job = {
                    "file": str(path),
                    "episode": episode,
                    "layout": kind,
                    "fps": fps,
                    "bad": None,
                    "source_fps": source_fps or SOURCE_FPS[kind],
                    "tcp_offset": tcp_offset,
                    "resize": list(image_size) if image_size else None,
                }
                try:
                    info = describe()
                    job.update(info)
                    if info["compressed"]:
                        info["hw"] = {c: _first_jpeg_size(f, c) for c in info["cameras"]}
                    this = {
                        "layout": kind,
                        "arms": info["arms"],
                        "cameras": info["cameras"],
                        "robot": info.get("robot", True),
                    }
                    sizes = {tuple(image_size)} if image_size else set(info["hw"].values())
                    if len(sizes) > 1:
                        raise EpisodeError(
                            path, episode, "images", f"cameras differ in size {info['hw']}: pass --image-size HxW"
                        )
                    if not info["cameras"]:
                        raise EpisodeError(
                            path,
                            episode,
                            "images",
                            "no camera of this episode is in the camera map "
                            f"{cmap}: pass --camera-map source=overhead|front",
                        )
                    this["image_hw"] = sizes.pop()
                    if shape is None:
                        shape = this
                    elif {k: v for k, v in this.items() if k != "image_hw"} != {
                        k: v for k, v in shape.items() if k != "image_hw"
                    }:
                        raise EpisodeError(
                            path, episode, "<layout>", f"{this} differs from the first episode's {shape}"
                        )
                    job["image_hw"] = list(shape["image_hw"])  # a different size fails when produced (or resizes)
                except EpisodeError as exc:
                    job["bad"] = validate.as_problem(exc)
                jobs.append(job)
    if shape is None:
        why = "; ".join(f"{j['file']} {j['episode']}: {j['bad'][1]}" for j in jobs if j.get("bad"))
        if not why:  # files that open but hold no episode at all (e.g. a robomimic file with an empty data/)
            why = f"{len(files)} file(s) opened, none holds an episode (robomimic: data/demo_*; ALOHA: one per file)"
        raise EpisodeError(files[0] if files else paths[0], None, "<file>", "no readable episode: " + why)
    task = task or env_name or "demonstration"
    for job in jobs:
        job["task"] = task
    features = schema.features(
        arms=shape["arms"],
        image_size=tuple(shape["image_hw"]),
        cameras=tuple(shape["cameras"].values()),
        robot=shape["robot"],
    )
    mapping = {
        "layout": shape["layout"],
        "camera_map": shape["cameras"],
        "fps": fps,
        "source_fps": source_fps or SOURCE_FPS[shape["layout"]],
        "sync": "nearest recorded step",
    }
    if shape["layout"] == "robomimic":
        mapping["action"] = (
            (
                "next resampled robot{i}_joint_pos + recorded gripper command (-1..1 -> 0..1); "
                "OSC delta `actions` not stored"
            )
            if shape["robot"]
            else "none (no joint positions)"
        )
    else:
        mapping.update(action="/action as recorded", ee_pose=f"Gen3 FK of qpos, tcp_offset {tcp_offset} m")
    meta = {
        "embodiment": "kinova_gen3" if shape["robot"] else "robomimic-eef",
        "arms": shape["arms"],
        "task": task,
        "source": {
            "format": f"hdf5-{shape['layout']}",
            "files": provenance.file_records([p for p in files if p.is_file()]),
            "mapping": mapping,
        },
    }
    return IngestPlan(
        fps=fps,
        features=features,
        jobs=jobs,
        produce=produce,
        glam_meta=meta,
        robot_type="kinova_gen3" if shape["robot"] else None,
    )


def _first_jpeg_size(f, cam: str) -> tuple[int, int]:
    import cv2

    img = cv2.imdecode(np.asarray(f["observations/images"][cam][0], dtype=np.uint8).ravel(), cv2.IMREAD_COLOR)
    return tuple(img.shape[:2]) if img is not None else (0, 0)


def produce(job: dict) -> dict:
    validate.bad_job(job)
    with open_file(job["file"]) as f:
        frames = _aloha_frames(f, job) if job["layout"] == "aloha" else _robomimic_frames(f, job)
    return {"task": job["task"], "frames": frames}
