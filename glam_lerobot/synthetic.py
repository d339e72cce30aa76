"""Small synthetic episodes in the canonical schema: moving coloured squares with consistent poses and actions.

For tests and benchmarks that need a real LeRobot dataset but not a simulator: the square's position follows the
end-effector, so a world model can actually learn something from it.
"""

from __future__ import annotations

import numpy as np

from glam_lerobot import schema


def job(
    episode: int,
    length: int = 12,
    image_size: int = 32,
    robot: bool = True,
    seed: int = 0,
    task: str = "synthetic",
    corrupt: str | None = None,
) -> dict:
    return {
        "file": "synthetic",
        "episode": episode,
        "length": length,
        "image_size": image_size,
        "robot": robot,
        "seed": seed,
        "task": task,
        "corrupt": corrupt,
    }


def features(image_size: int = 32, robot: bool = True) -> dict:
    return schema.features(image_size=(image_size, image_size), robot=robot)


def produce(job: dict) -> dict:
    rng = np.random.default_rng([job["seed"], job["episode"]])
    T, S = job["length"], job["image_size"]
    joints = np.cumsum(rng.normal(0, 0.05, size=(T + 1, schema.ARM_JOINTS)), axis=0).astype(np.float32)
    gripper = (np.arange(T + 1) > T // 2).astype(np.float32)[:, None]
    state = np.concatenate([joints, gripper * schema.GRIPPER_MAX_OPENING], axis=1)[:T]
    action = np.concatenate([joints[1:], gripper[1:]], axis=1)  # the next joint positions are the targets
    pos = np.tanh(joints[:T, :3])  # an end-effector that moves with the joints, in [-1, 1]
    rot6d = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (T, 1))
    ee = np.concatenate([pos, rot6d, state[:, -1:]], axis=1).astype(np.float32)
    frames = {}
    for c, cam in enumerate(schema.CAMERAS):
        img = np.zeros((T, S, S, 3), np.uint8)
        px = ((pos[:, c : c + 2] + 1) / 2 * (S - 6)).astype(int)
        for t in range(T):
            img[t, px[t, 0] : px[t, 0] + 6, px[t, 1] : px[t, 1] + 6] = (255, 80 + 100 * c, 40)
        frames[schema.image_key(cam)] = img
    frames[schema.EE_POSE] = ee
    if job["robot"]:
        frames[schema.STATE], frames[schema.ACTION] = state, action
    if job.get("wait_for"):  # tests: hold this episode until another shard has finished (a file appears)
        import glob
        import time

        deadline = time.time() + 120
        while not glob.glob(job["wait_for"]) and time.time() < deadline:
            time.sleep(0.05)
    if job.get("corrupt") == "nan":
        frames[schema.EE_POSE][T // 2, 0] = np.nan
    return {"task": job["task"], "frames": frames}
