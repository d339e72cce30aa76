"""The five tasks of the paper: which objects, where they start (from the seed), and when the task is done.

Placements depend on the seed only, never on the embodiment: the same seed puts the objects in the same place
for the Kinova arm and for the UMI gripper, which is what lets the transfer experiment replay a UMI episode's
latents on the Kinova from the same start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glam_lerobot.sim import scene

TASKS = ("lift", "pick_place", "knock_down", "stack_two", "stack_three")
EMBODIMENTS = ("kinova", "umi")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str  # the LeRobot `task` string of every episode
    objects: tuple[tuple[str, str], ...]  # (name, kind)
    arms: int
    max_steps: int  # episode limit at schema.DEFAULT_FPS for the Gymnasium env
    # per object: (x range, y range) of its start position on the table
    regions: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    min_distance: float = 0.0  # between object centres


TASK_SPECS = {
    "lift": TaskSpec("lift", "pick up the red cube", (("cube", "cube"),), 1, 80, (((-0.1, 0.1), (-0.15, 0.15)),)),
    "pick_place": TaskSpec(
        "pick_place",
        "put the red cube into the bowl",
        (("cube", "cube"), ("bowl", "bowl")),
        1,
        120,
        (((-0.1, 0.1), (-0.15, 0.15)), ((-0.1, 0.1), (-0.15, 0.15))),
        min_distance=0.2,
    ),
    "knock_down": TaskSpec(
        "knock_down", "knock the bottle over", (("bottle", "bottle"),), 1, 80, (((-0.1, 0.05), (-0.12, 0.12)),)
    ),
    "stack_two": TaskSpec(
        "stack_two",
        "stack the red cube on the green cube",
        (("cube_red", "cube"), ("cube_green", "cube")),
        1,
        120,
        (((-0.1, 0.1), (-0.15, 0.15)), ((-0.1, 0.1), (-0.15, 0.15))),
        min_distance=0.12,
    ),
    "stack_three": TaskSpec(
        "stack_three",
        "stack the red cube on the green cube, then the blue cube on the red cube",
        (("cube_red", "cube"), ("cube_green", "cube"), ("cube_blue", "cube")),
        2,
        200,
        (((-0.1, 0.1), (-0.25, -0.12)), ((-0.08, 0.08), (-0.04, 0.04)), ((-0.1, 0.1), (0.12, 0.25))),
        min_distance=0.1,
    ),
}

# Objects whose ground-truth masks GLAM-O sees by default (the manipulated ones).
MASK_OBJECTS = {
    "lift": ["cube"],
    "pick_place": ["cube"],
    "knock_down": ["bottle"],
    "stack_two": ["cube_red", "cube_green"],
    "stack_three": ["cube_red", "cube_green", "cube_blue"],
}


def check_task(task: str) -> TaskSpec:
    if task not in TASK_SPECS:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    return TASK_SPECS[task]


def check_embodiment(embodiment: str) -> str:
    if embodiment not in EMBODIMENTS:
        raise ValueError(f"unknown embodiment {embodiment!r}: choose one of {', '.join(EMBODIMENTS)}")
    return embodiment


def sample_placement(task: str, seed: int) -> dict[str, tuple[float, float, float]]:
    """{object: (x, y, yaw)} drawn from the seed alone (rejection sampling keeps objects apart)."""
    spec = check_task(task)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        out = {}
        for (name, kind), (xr, yr) in zip(spec.objects, spec.regions, strict=True):
            yaw = rng.uniform(-np.pi / 4, np.pi / 4) if kind == "cube" else 0.0
            out[name] = (rng.uniform(*xr), rng.uniform(*yr), yaw)
        xy = np.array([v[:2] for v in out.values()])
        dists = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 9
        if dists.min() >= spec.min_distance:
            return out
    raise RuntimeError(f"could not place the objects of {task} apart (seed {seed})")


def object_qpos_adr(model, task: str) -> dict[str, int]:
    """qpos address of each object's free joint (position xyz, then quaternion wxyz)."""
    return {name: int(model.jnt_qposadr[model.joint(name).id]) for name, _ in check_task(task).objects}


def object_positions(task: str, embodiment: str, qpos: np.ndarray) -> dict[str, np.ndarray]:
    """{object: (T, 3) positions} from recorded full qpos rows (T, nq), e.g. a dataset's `sim.qpos` column."""
    from glam_lerobot.sim.world import compiled_model

    model = compiled_model(task, check_embodiment(embodiment))
    qpos = np.atleast_2d(np.asarray(qpos))
    if qpos.shape[1] != model.nq:
        raise ValueError(f"qpos has {qpos.shape[1]} columns but the {task}/{embodiment} scene has nq={model.nq}")
    return {name: qpos[:, adr : adr + 3].astype(np.float64) for name, adr in object_qpos_adr(model, task).items()}


def _up_z(quat: np.ndarray) -> float:
    """z component of a body's local z axis, from its (w, x, y, z) quaternion: 1 upright, 0 lying down."""
    w, x, y, z = quat
    return 1 - 2 * (x * x + y * y)


def _on_top(top: np.ndarray, bottom: np.ndarray) -> bool:
    dz = top[2] - bottom[2]
    return bool(np.linalg.norm(top[:2] - bottom[:2]) < 0.03 and 0.04 < dz < 0.065)


def is_success(task: str, positions: dict[str, np.ndarray], quats: dict[str, np.ndarray], held: set[str]) -> bool:
    """Task check on one state. positions/quats: per object; held: objects touching a gripper."""
    p = positions
    if task == "lift":
        return bool(p["cube"][2] > 0.1)
    if task == "pick_place":
        inside = np.linalg.norm(p["cube"][:2] - p["bowl"][:2]) < scene.BOWL_RADIUS - 0.02
        return bool(inside and p["cube"][2] < 0.06 and "cube" not in held)
    if task == "knock_down":
        return _up_z(quats["bottle"]) < 0.5
    if task == "stack_two":
        return _on_top(p["cube_red"], p["cube_green"]) and p["cube_green"][2] < 0.03 and "cube_red" not in held
    if task == "stack_three":
        return (
            _on_top(p["cube_red"], p["cube_green"])
            and _on_top(p["cube_blue"], p["cube_red"])
            and p["cube_green"][2] < 0.03
            and not held & {"cube_red", "cube_blue"}
        )
    raise ValueError(task)
