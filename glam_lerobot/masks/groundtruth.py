"""Ground-truth masks for datasets recorded by the toolkit's simulator: re-rendered from the `sim.qpos` column.

Every simulated episode stores the full MuJoCo state per frame (schema.SIM_QPOS), so masks of any object can be
rendered later, exactly, with MuJoCo's segmentation renderer (glam_lerobot.sim.render.render_object_masks),
without re-running the expert. Task and embodiment come from the dataset's meta/glam.json.
"""

from __future__ import annotations

import numpy as np

from glam_lerobot import schema


def default_objects(task: str) -> list[str]:
    """The simulator's own object names for a task (glam_lerobot.sim.tasks.MASK_OBJECTS)."""
    from glam_lerobot.sim.tasks import MASK_OBJECTS

    if task not in MASK_OBJECTS:
        raise ValueError(f"the simulator has no task {task!r} (tasks: {', '.join(MASK_OBJECTS)})")
    return list(MASK_OBJECTS[task])


class GroundTruthMasker:
    """`mask_episode(qpos)` -> {camera: (T, H, W) bool}, rendered by the simulator for the named objects."""

    def __init__(
        self, task: str, embodiment: str, objects: list[str] | None, image_size: tuple[int, int], cameras: list[str]
    ):
        if image_size[0] != image_size[1]:
            raise ValueError(f"the simulator renders square frames; this dataset has {image_size[0]}x{image_size[1]}")
        self.task, self.embodiment = task, embodiment
        self.objects = list(objects) if objects else default_objects(task)
        self.image_size, self.cameras = image_size, list(cameras)
        self._check_objects()

    def _check_objects(self) -> None:
        """Unknown object names fail now, naming the scene's bodies, not after the first episode."""
        import mujoco

        from glam_lerobot.sim.render import object_bodies
        from glam_lerobot.sim.world import compiled_model

        model = compiled_model(self.task, self.embodiment)
        try:
            object_bodies(model, self.objects)
        except ValueError as exc:
            bodies = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(1, model.nbody)]
            raise ValueError(f"{exc} ({self.task}/{self.embodiment} bodies: {', '.join(bodies)})") from None

    def mask_episode(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        from glam_lerobot.sim.render import render_object_masks

        masks = render_object_masks(
            self.task, self.embodiment, np.asarray(qpos), self.objects, self.image_size[0], tuple(self.cameras)
        )
        return {cam: np.asarray(masks[cam], dtype=bool) for cam in self.cameras}


def require_sim_columns(features: dict, root) -> None:
    if schema.SIM_QPOS not in features:
        raise ValueError(
            f"{root}: no {schema.SIM_QPOS!r} column, so there is no ground truth to render: the groundtruth backend "
            "needs a dataset recorded with `glam-lerobot sim record`; use --backend ultralytics for camera data"
        )
