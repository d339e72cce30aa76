"""Feed Kinova action sequences back into the simulator: replay a recorded episode, or roll out decoded actions.

The recorder applies exactly the float32 actions it stores, and MuJoCo is deterministic, so replaying a
recorded episode from its seed reproduces it; the transfer experiment uses `rollout_actions` to run actions
decoded from another source's latents from the same start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glam_lerobot import provenance, schema
from glam_lerobot.sim import tasks


def rollout_actions(
    task: str,
    seed: int,
    actions: np.ndarray,
    image_size: int | None = schema.DEFAULT_IMAGE_SIZE,
    relative: bool = False,
) -> dict:
    """Run Kinova `actions` (T, 8 * arms) open-loop from `seed`'s start.

    `relative=True` takes actions in the world model's relative form (schema.relative_action) and makes each
    absolute with the joint state at the step it is applied, clipping the gripper command to [0, 1]: that is how
    actions decoded from latents are executed. Returns {"success": task check after the last action,
    "object_positions": {object: (T + 1, 3)} (before each action and after the last), "qpos": (T + 1, nq),
    "ee_pose": (T + 1, 10 * arms), "actions": the (T, 8 * arms) absolute actions applied, "frames": {camera:
    (T + 1, H, W, 3) uint8} or None when image_size is None}.
    """
    from glam_lerobot.sim.render import Cameras
    from glam_lerobot.sim.world import SimWorld

    world = SimWorld(task, "kinova")
    actions = np.asarray(actions, dtype=np.float32)
    width = schema.STATE_DIM_PER_ARM * world.arms
    if actions.ndim != 2 or actions.shape[1] != width or len(actions) == 0:
        raise ValueError(f"{task} takes Kinova actions of shape (T > 0, {width}), got {actions.shape}")
    cams = Cameras(world.model, image_size) if image_size else None
    world.reset(seed)
    qpos, ee, applied, frames = [], [], [], {}
    gripper = slice(schema.ARM_JOINTS, None, schema.STATE_DIM_PER_ARM)

    def observe():
        qpos.append(world.data.qpos.copy())
        ee.append(world.ee_pose())
        if cams is not None:
            for cam, img in cams.rgb(world.data).items():
                frames.setdefault(cam, []).append(img)

    try:
        for action in actions:
            observe()
            if relative:
                action = schema.absolute_action(action, world.state().astype(np.float32), world.arms)
                action[gripper] = np.clip(action[gripper], 0.0, 1.0)
            applied.append(action.astype(np.float32))
            world.step_kinova(applied[-1])
        observe()
        success = world.success()
    finally:
        if cams is not None:
            cams.close()
    qpos = np.stack(qpos)
    return {
        "success": bool(success),
        "object_positions": tasks.object_positions(task, "kinova", qpos),
        "qpos": qpos,
        "ee_pose": np.stack(ee),
        "actions": np.stack(applied),
        "frames": {c: np.stack(v) for c, v in frames.items()} if cams is not None else None,
    }


def read_episode(root: Path | str, episode: int, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns of one episode, read straight from the dataset's parquet files (no video decoding)."""
    import pyarrow.dataset as pads

    root = Path(root)
    data = pads.dataset(root / "data", format="parquet")
    missing = [c for c in columns if c not in data.schema.names]
    if missing:
        raise ValueError(f"{root}: the dataset has no column {missing[0]!r}")
    table = data.to_table(columns=[*columns, "frame_index"], filter=pads.field("episode_index") == episode)
    if table.num_rows == 0:
        raise ValueError(f"{root}: no episode {episode}")
    order = np.argsort(table.column("frame_index").to_numpy())
    return {c: np.stack(table.column(c).to_numpy(zero_copy_only=False))[order] for c in columns}


def replay_episode(root: Path | str, episode: int, tolerance: float = 1e-3) -> dict:
    """Replay recorded episode `episode` of a Kinova sim dataset and compare it with the recording.

    Returns {"task", "seed", "success", "reproduced", "max_object_error" (m, over all recorded frames),
    "final_positions": {object: (recorded, replayed)}}. `reproduced` = success and every object within
    `tolerance` of its recorded trajectory.
    """
    root = Path(root)
    meta = provenance.read(root)
    if meta.get("source", {}).get("format") != "glam-sim":
        raise ValueError(f"{root}: not a dataset recorded by `glam-lerobot sim record` (meta/glam.json)")
    if meta.get("embodiment") != "kinova":
        raise ValueError(f"{root}: a {meta.get('embodiment')} recording has no robot actions to replay")
    seeds = meta.get("episode_seeds", [])
    if not 0 <= episode < len(seeds):
        raise ValueError(f"{root}: episode {episode} does not exist (the dataset has {len(seeds)} episodes)")
    task, seed = meta["task"], seeds[episode]
    cols = read_episode(root, episode, [schema.ACTION, schema.SIM_QPOS])
    out = rollout_actions(task, seed, cols[schema.ACTION], image_size=None)
    recorded = tasks.object_positions(task, "kinova", cols[schema.SIM_QPOS])
    replayed = {k: v[:-1] for k, v in out["object_positions"].items()}  # the frames the recording observed
    err = max(float(np.abs(recorded[k] - replayed[k]).max()) for k in recorded)
    return {
        "task": task,
        "seed": seed,
        "success": out["success"],
        "reproduced": bool(out["success"] and err <= tolerance),
        "max_object_error": err,
        "final_positions": {k: (recorded[k][-1], replayed[k][-1]) for k in recorded},
    }
