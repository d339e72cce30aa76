"""One simulated task for one embodiment: the compiled scene, reset from a seed, 10 Hz control, observations.

Control runs at schema.DEFAULT_FPS with physics sub-steps of scene.TIMESTEP. The Kinova is driven by joint
position targets plus a gripper command in [0, 1] (1 = closed), exactly the dataset's `action`; the UMI
gripper by a mocap pose target plus the same gripper command (it has no action column in the datasets).
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np

from glam_lerobot import schema
from glam_lerobot.rotations import matrix_to_6d
from glam_lerobot.sim import models, scene, tasks
from glam_lerobot.sim.ik import ArmIK

SUBSTEPS = round(1.0 / schema.DEFAULT_FPS / scene.TIMESTEP)
SETTLE_STEPS = 25  # physics steps after a reset, so objects rest on the table before the first frame


@functools.cache
def scene_text(task: str, embodiment: str) -> str:
    spec = tasks.check_task(task)
    tasks.check_embodiment(embodiment)
    return scene.scene_xml(f"glam_{task}_{embodiment}", list(spec.objects), embodiment, spec.arms)


@functools.cache
def compiled_model(task: str, embodiment: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(scene_text(task, embodiment))


@functools.cache
def kinova_home(arms: int) -> tuple[np.ndarray, ...]:
    """Joint positions putting each arm's pinch frame at scene.home_pose (solved once by IK)."""
    model = compiled_model("stack_three" if arms == 2 else "lift", "kinova")
    out = []
    for i in range(arms):
        ik = ArmIK(model, f"arm{i}/")
        pos, rot = scene.home_pose(i, arms)
        q = ik.solve(models.GEN3_TOPDOWN_SEED, pos, rot, iters=200, tol=1e-7)
        out.append(q)
    return tuple(out)


def gripper_target(command: float) -> float:
    """Gripper command in [0, 1] (1 = closed) -> each finger's position target (m from the centre)."""
    return models.FINGER_TRAVEL * (1.0 - float(np.clip(command, 0.0, 1.0)))


class SimWorld:
    def __init__(self, task: str, embodiment: str = "kinova"):
        self.task, self.embodiment = task, embodiment
        self.spec = tasks.check_task(task)
        self.model = compiled_model(task, tasks.check_embodiment(embodiment))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arms = self.spec.arms
        self.prefixes = [f"{'arm' if embodiment == 'kinova' else 'umi'}{i}/" for i in range(self.arms)]
        self.sites = [m.site(f"{p}pinch").id for p in self.prefixes]
        self.finger_qadr = [
            [m.jnt_qposadr[m.joint(f"{p}{s}_finger").id] for s in ("left", "right")] for p in self.prefixes
        ]
        self.finger_act = [[m.actuator(f"{p}{s}_finger").id for s in ("left", "right")] for p in self.prefixes]
        gripper_bodies = set()
        for b in range(m.nbody):
            name = m.body(b).name
            if any(name.startswith(p) for p in self.prefixes) and (
                "finger" in name or "pinch" in name or "gripper" in name
            ):
                gripper_bodies.add(b)
        self.gripper_bodies = gripper_bodies
        self.object_bodies = {name: m.body(name).id for name, _ in self.spec.objects}
        self.object_qadr = tasks.object_qpos_adr(m, task)
        if embodiment == "kinova":
            self.iks = [ArmIK(m, p) for p in self.prefixes]
            self.joint_qadr = [ik.qadr for ik in self.iks]
            self.joint_act = [np.array([m.actuator(f"{p}joint_{j + 1}").id for j in range(7)]) for p in self.prefixes]
            self.home_q = kinova_home(self.arms)
            for ik, q in zip(self.iks, self.home_q, strict=True):
                ik.posture = q
        else:
            self.mocap = [m.body_mocapid[m.body(f"{p}target").id] for p in self.prefixes]
            self.free_qadr = [m.jnt_qposadr[m.joint(f"{p}free").id] for p in self.prefixes]
        self.seed: int | None = None
        self.placement: dict | None = None

    # ---- reset and control ----
    def reset(self, seed: int) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.seed = int(seed)
        self.placement = tasks.sample_placement(self.task, seed)
        for name, (x, y, yaw) in self.placement.items():
            adr = self.object_qadr[name]
            z = scene.CUBE_HALF if name.startswith("cube") else 0.0
            d.qpos[adr : adr + 3] = (x, y, z)
            d.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
        for i in range(self.arms):
            for a, adr in zip(self.finger_act[i], self.finger_qadr[i], strict=True):
                d.qpos[adr] = models.FINGER_TRAVEL
                d.ctrl[a] = models.FINGER_TRAVEL
            if self.embodiment == "kinova":
                d.qpos[self.joint_qadr[i]] = self.home_q[i]
                d.ctrl[self.joint_act[i]] = self.home_q[i]
            else:
                pos, rot = scene.home_pose(i, self.arms)
                quat = _quat(rot)
                d.qpos[self.free_qadr[i] : self.free_qadr[i] + 7] = np.r_[pos, quat]
                d.mocap_pos[self.mocap[i]], d.mocap_quat[self.mocap[i]] = pos, quat
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=SETTLE_STEPS)

    def step_kinova(self, action: np.ndarray) -> None:
        """One control step with the dataset's action: per arm 7 joint targets + gripper command."""
        action = np.asarray(action, dtype=np.float64).reshape(self.arms, schema.STATE_DIM_PER_ARM)
        for i in range(self.arms):
            self.data.ctrl[self.joint_act[i]] = action[i, :7]
            self.data.ctrl[self.finger_act[i]] = gripper_target(action[i, 7])
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)

    def step_umi(self, targets: list[tuple[np.ndarray, np.ndarray, float]]) -> None:
        """One control step moving each floating gripper's mocap body to (pos, rot 3x3, gripper command).

        The mocap target moves in a straight line over the sub-steps, so the gripper glides rather than jumps.
        """
        d = self.data
        starts = [(d.mocap_pos[k].copy(), d.mocap_quat[k].copy()) for k in self.mocap]
        ends = [(np.asarray(p, float), _quat(r)) for p, r, _ in targets]
        for i, (_, _, g) in enumerate(targets):
            d.ctrl[self.finger_act[i]] = gripper_target(g)
        chunk = 10
        for s in range(0, SUBSTEPS, chunk):
            f = min(1.0, (s + chunk) / SUBSTEPS)
            for k, (p0, q0), (p1, q1) in zip(self.mocap, starts, ends, strict=True):
                d.mocap_pos[k] = p0 + f * (p1 - p0)
                q1 = q1 if np.dot(q0, q1) >= 0 else -q1  # normalised lerp: the turns per step are small
                q = q0 + f * (q1 - q0)
                d.mocap_quat[k] = q / np.linalg.norm(q)
            mujoco.mj_step(self.model, d, nstep=min(chunk, SUBSTEPS - s))

    # ---- observations ----
    def gripper_opening(self, arm: int) -> float:
        return float(self.data.qpos[self.finger_qadr[arm]].sum())

    def ee_pose(self) -> np.ndarray:
        """(10 * arms,) float32: pinch position, 6D rotation, gripper opening (m), per arm."""
        out = []
        for i, s in enumerate(self.sites):
            rot = self.data.site_xmat[s].reshape(3, 3)
            out.append(np.r_[self.data.site_xpos[s], matrix_to_6d(rot), self.gripper_opening(i)])
        return np.concatenate(out).astype(np.float32)

    def state(self) -> np.ndarray:
        """Kinova only: (8 * arms,) float32 joint positions + gripper opening, per arm."""
        return np.concatenate(
            [np.r_[self.data.qpos[self.joint_qadr[i]], self.gripper_opening(i)] for i in range(self.arms)]
        ).astype(np.float32)

    def pinch(self, arm: int) -> tuple[np.ndarray, np.ndarray]:
        return self.data.site_xpos[self.sites[arm]].copy(), self.data.site_xmat[self.sites[arm]].reshape(3, 3).copy()

    def object_positions(self) -> dict[str, np.ndarray]:
        return {n: self.data.qpos[a : a + 3].copy() for n, a in self.object_qadr.items()}

    def object_quats(self) -> dict[str, np.ndarray]:
        return {n: self.data.qpos[a + 3 : a + 7].copy() for n, a in self.object_qadr.items()}

    def held_objects(self) -> set[str]:
        """Objects in contact with any gripper geom right now."""
        m, d = self.model, self.data
        by_body = {b: n for n, b in self.object_bodies.items()}
        held = set()
        for c in d.contact[: d.ncon]:
            b1, b2 = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
            for a, b in ((b1, b2), (b2, b1)):
                if a in self.gripper_bodies and b in by_body:
                    held.add(by_body[b])
        return held

    def success(self) -> bool:
        return tasks.is_success(self.task, self.object_positions(), self.object_quats(), self.held_objects())


def _quat(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(rot, float).ravel())
    return q
