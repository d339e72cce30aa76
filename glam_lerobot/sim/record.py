"""`sim record`: run the scripted expert for N seeds and write the episodes as a LeRobot v3 dataset.

One job per episode, (task, embodiment, seed, image size, masks); the writer (glam_lerobot.writing) runs the
jobs in worker processes, drops episodes whose expert failed (SkipEpisode, counted in the summary) and writes
meta/glam.json with the seed of every written episode, so any episode can be replayed or re-rendered.
Episode i uses seed `seed + i`; the same seed gives the same object placement for both embodiments.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from glam_lerobot import schema
from glam_lerobot.sim import tasks

SOURCE_FORMAT = "glam-sim"
ROBOT_TYPE = {"kinova": "kinova_gen3", "umi": "umi_gripper"}


def validate_request(task: str, embodiment: str, episodes: int, image_size: int) -> None:
    """Raise ValueError on arguments that cannot make a dataset, before anything is written."""
    tasks.check_task(task)
    tasks.check_embodiment(embodiment)
    if episodes <= 0:
        raise ValueError(f"--episodes must be a positive number of episodes, got {episodes}")
    if image_size < 16:
        raise ValueError(f"--image-size must be at least 16 pixels, got {image_size}")


def dataset_features(
    task: str, embodiment: str, image_size: int = schema.DEFAULT_IMAGE_SIZE, masks: bool = False
) -> dict[str, dict]:
    from glam_lerobot.sim.world import compiled_model

    spec = tasks.check_task(task)
    nq = compiled_model(task, embodiment).nq
    return schema.features(
        arms=spec.arms, image_size=(image_size, image_size), robot=embodiment == "kinova", masks=masks, sim_nq=nq
    )


def episode_jobs(task: str, embodiment: str, episodes: int, seed: int, image_size: int, masks: bool) -> list[dict]:
    """Small picklable job descriptions; `file`/`episode` name the episode in the writer's messages."""
    return [
        {
            "file": f"sim:{embodiment}/{task}",
            "episode": seed + i,
            "task": task,
            "embodiment": embodiment,
            "seed": seed + i,
            "image_size": image_size,
            "masks": masks,
        }
        for i in range(episodes)
    ]


# One world and one set of renderers per (task, embodiment, size) and per thread: GL contexts are bound to the
# thread that made them, and the writer produces episodes in a thread of its own; a finished thread's renderers
# go with it.
class _PerThread(threading.local):
    def __init__(self):
        self.renderers: dict = {}  # (task, embodiment, image_size) -> (world, cameras)


_LOCAL = _PerThread()


def cache() -> dict:
    """This thread's {(task, embodiment, image_size): (world, cameras)}."""
    return _LOCAL.renderers


def _world_and_cameras(task: str, embodiment: str, image_size: int):
    from glam_lerobot.sim.render import Cameras
    from glam_lerobot.sim.world import SimWorld

    key, mine = (task, embodiment, image_size), cache()
    if key not in mine:
        world = SimWorld(task, embodiment)
        mine[key] = (world, Cameras(world.model, image_size))
    return mine[key]


def record_episode(
    task: str, embodiment: str, seed: int, image_size: int = schema.DEFAULT_IMAGE_SIZE, masks: bool = False
) -> tuple[bool, dict[str, np.ndarray]]:
    """Run the expert from `seed`, observing every control step. Returns (success, frames by feature key)."""
    from glam_lerobot.sim.experts import run_expert
    from glam_lerobot.sim.render import mask_frame, object_bodies

    world, cams = _world_and_cameras(task, embodiment, image_size)
    bodies = object_bodies(world.model, tasks.MASK_OBJECTS[task]) if masks else None
    cols: dict[str, list] = {}

    def observe(w, action):
        images, object_masks = cams.render(w.data, bodies)
        for cam, img in images.items():
            cols.setdefault(schema.image_key(cam), []).append(img)
        cols.setdefault(schema.EE_POSE, []).append(w.ee_pose())
        if embodiment == "kinova":
            cols.setdefault(schema.STATE, []).append(w.state())
            cols.setdefault(schema.ACTION, []).append(action)
        for cam, m in (object_masks or {}).items():
            cols.setdefault(schema.mask_key(cam), []).append(mask_frame(m))
        cols.setdefault(schema.SIM_QPOS, []).append(w.data.qpos.astype(np.float32))

    success = run_expert(world, seed, on_step=observe)
    return success, {k: np.stack(v) for k, v in cols.items()}


def produce_episode(job: dict) -> dict:
    """The writer's `produce`: one job -> {"task", "frames"}; a failed expert run raises SkipEpisode."""
    from glam_lerobot.writing import SkipEpisode

    success, frames = record_episode(job["task"], job["embodiment"], job["seed"], job["image_size"], job["masks"])
    if not success:
        raise SkipEpisode(f"seed {job['seed']}: the scripted expert did not complete {job['task']}")
    return {"task": tasks.TASK_SPECS[job["task"]].description, "frames": frames}


def record(
    task: str,
    embodiment: str,
    episodes: int,
    seed: int,
    root: Path | str,
    repo_id: str | None = None,
    image_size: int = schema.DEFAULT_IMAGE_SIZE,
    masks: bool = False,
    workers: int | str = 1,
    overwrite: bool = False,
    executor=None,
):
    """Record `episodes` expert episodes (seeds seed .. seed+episodes-1) into a new dataset at `root`.

    Returns the writer's WriteSummary; meta/glam.json gets `episode_seeds` of the episodes actually written.
    """
    from glam_lerobot.writing import write_dataset

    validate_request(task, embodiment, episodes, image_size)
    root = Path(root)
    repo_id = repo_id or f"local/glam-sim-{embodiment}-{task}"
    spec = tasks.TASK_SPECS[task]
    jobs = episode_jobs(task, embodiment, episodes, seed, image_size, masks)
    meta = {
        "embodiment": embodiment,
        "arms": spec.arms,
        "task": task,
        "task_description": spec.description,
        "source": {
            "format": SOURCE_FORMAT,
            "simulator": "mujoco",
            "command": f"glam-lerobot sim record --embodiment {embodiment} --task {task} --episodes {episodes} "
            f"--seed {seed} --image-size {image_size}" + (" --masks" if masks else ""),
            "image_size": image_size,
            "masks": masks,
            "mask_objects": tasks.MASK_OBJECTS[task] if masks else [],
            "first_seed": seed,
        },
    }
    summary = write_dataset(
        root,
        repo_id,
        schema.DEFAULT_FPS,
        dataset_features(task, embodiment, image_size, masks),
        jobs,
        produce_episode,
        workers=workers,
        glam_meta=meta,
        robot_type=ROBOT_TYPE[embodiment],
        desc=f"recording {embodiment}/{task}",
        overwrite=overwrite,
        executor=executor,
        job_meta={"episode_seeds": [j["seed"] for j in jobs]},  # of the episodes written (failed runs drop out)
    )
    return summary
