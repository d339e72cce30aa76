"""Scripted experts: Cartesian waypoints for the pinch frame, the same script for both embodiments.

Each expert is a generator that yields, per control step, one target (position, rotation 3x3, gripper command)
per arm. Phase boundaries read the simulator (where the cube really is, where it sits in the fingers), so the
script corrects for small slips. The Kinova turns targets into joint position targets by IK (KinovaController);
the UMI gripper follows them through its mocap weld.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glam_lerobot import schema
from glam_lerobot.sim import scene
from glam_lerobot.sim.world import SimWorld

DT = 1.0 / schema.DEFAULT_FPS
MOVE_SPEED = 0.3  # m/s in free space
NEAR_SPEED = 0.12  # m/s close to objects
CARRY_Z = 0.15  # pinch height while carrying
GRASP_Z = 0.028  # pinch height when grasping a cube lying on the table
OPEN, CLOSED = 0.0, 1.0

Target = tuple[np.ndarray, np.ndarray, float]


class Arm:
    """The commanded pinch pose of one arm, moved by straight-line segments."""

    def __init__(self, world: SimWorld, index: int):
        self.world, self.index = world, index
        # start from the nominal home pose (exact), not the measured one (off by the servo's tracking error)
        self.pos, self.rot = scene.home_pose(index, world.arms)
        self.grip = OPEN

    def target(self) -> Target:
        return self.pos.copy(), self.rot.copy(), self.grip

    def move(self, pos, rot=None, grip=None, speed=MOVE_SPEED, min_steps=2) -> Iterator[Target]:
        pos = np.asarray(pos, float)
        rot = self.rot if rot is None else rot
        grip = self.grip if grip is None else grip
        n = max(min_steps, int(np.ceil(np.linalg.norm(pos - self.pos) / (speed * DT))))
        p0, r0, g0 = self.pos, self.rot, self.grip
        for k in range(1, n + 1):
            f = k / n
            self.pos = p0 + f * (pos - p0)
            self.rot = _interp_rot(r0, rot, f)
            self.grip = g0 + f * (grip - g0)
            yield self.target()

    def hold(self, steps: int) -> Iterator[Target]:
        for _ in range(steps):
            yield self.target()

    def pick(self, obj: str) -> Iterator[Target]:
        """Top-down grasp of a cube, aligned with its faces, then lift to carrying height."""
        p = self.world.object_positions()[obj]
        yaw = _cube_yaw(self.world.object_quats()[obj])
        rot = scene.topdown(yaw)
        yield from self.move([p[0], p[1], CARRY_Z], rot)
        p = self.world.object_positions()[obj]  # re-read: correct for any nudge
        yield from self.move([p[0], p[1], GRASP_Z + 0.05], speed=MOVE_SPEED)
        yield from self.move([p[0], p[1], GRASP_Z], speed=NEAR_SPEED)
        yield from self.hold(2)
        yield from self.move(self.pos, grip=CLOSED, min_steps=4)
        yield from self.hold(2)
        yield from self.move([p[0], p[1], CARRY_Z], speed=NEAR_SPEED * 1.5)

    def place(self, obj: str, xy, bottom_z: float) -> Iterator[Target]:
        """Carry the held `obj` so its centre lands over `xy` with its bottom at `bottom_z`, then release."""
        yield from self.move([xy[0], xy[1], CARRY_Z])
        yield from self.hold(1)
        # where the object sits relative to the pinch point (it may have slipped a little in the fingers)
        pinch, _ = self.world.pinch(self.index)
        offset = self.world.object_positions()[obj] - pinch
        goal = np.array([xy[0], xy[1], bottom_z + scene.CUBE_HALF]) - offset
        yield from self.move([goal[0], goal[1], goal[2] + 0.04], speed=MOVE_SPEED)
        yield from self.move(goal, speed=NEAR_SPEED * 0.7)
        yield from self.hold(1)
        yield from self.move(self.pos, grip=OPEN, min_steps=3)
        yield from self.move(self.pos + [0, 0, 0.1], speed=NEAR_SPEED * 1.5)


def _interp_rot(r0: np.ndarray, r1: np.ndarray, f: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation, Slerp

    if f >= 1 or np.allclose(r0, r1):
        return r1 if f >= 1 else r0
    return Slerp([0, 1], Rotation.from_matrix([r0, r1]))(f).as_matrix()


def _cube_yaw(quat: np.ndarray) -> float:
    """Yaw of a cube's face normal, folded into [-pi/4, pi/4) (cubes look the same every quarter turn)."""
    w, x, y, z = quat
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4


def lift(world: SimWorld) -> Iterator[list[Target]]:
    arm = Arm(world, 0)
    for t in arm.pick("cube"):
        yield [t]
    for t in arm.move(arm.pos + [0, 0, 0.05]):
        yield [t]
    for t in arm.hold(3):
        yield [t]


def pick_place(world: SimWorld) -> Iterator[list[Target]]:
    arm = Arm(world, 0)
    for t in arm.pick("cube"):
        yield [t]
    bowl = world.object_positions()["bowl"]
    for t in arm.place("cube", bowl[:2], bottom_z=0.04):
        yield [t]
    for t in arm.hold(3):
        yield [t]


def stack_two(world: SimWorld) -> Iterator[list[Target]]:
    arm = Arm(world, 0)
    for t in arm.pick("cube_red"):
        yield [t]
    green = world.object_positions()["cube_green"]
    for t in arm.place("cube_red", green[:2], bottom_z=green[2] + scene.CUBE_HALF + 0.006):
        yield [t]
    for t in arm.hold(3):
        yield [t]


def knock_down(world: SimWorld) -> Iterator[list[Target]]:
    """Close the fingers, come down beside the bottle and sweep through its upper half (away from the robot)."""
    arm = Arm(world, 0)
    b = world.object_positions()["bottle"]
    rot = scene.topdown(0.0)  # fingers open along the sweep: a pad's flat back leads, nothing wedges them apart
    for t in arm.move([b[0] - 0.13, b[1], 0.25], rot, grip=CLOSED):
        yield [t]
    for t in arm.move([b[0] - 0.13, b[1], 0.13], speed=MOVE_SPEED):
        yield [t]
    for t in arm.move([b[0] + 0.05, b[1], 0.13], speed=0.3):
        yield [t]
    for t in arm.move([b[0] - 0.08, b[1], 0.25]):
        yield [t]
    for t in arm.hold(6):
        yield [t]


def stack_three(world: SimWorld) -> Iterator[list[Target]]:
    """Arm 0 puts red on green and backs away; arm 1 picks blue meanwhile, waits on its side, puts it on red."""
    a0, a1 = Arm(world, 0), Arm(world, 1)
    green = world.object_positions()["cube_green"]
    red_placed = [False]

    def arm0():
        yield from a0.pick("cube_red")
        yield from a0.place("cube_red", green[:2], bottom_z=green[2] + scene.CUBE_HALF + 0.006)
        red_placed[0] = True
        yield from a0.move(scene.home_pose(0, 2)[0])

    def arm1():
        yield from a1.hold(6)
        yield from a1.pick("cube_blue")
        yield from a1.move([a1.pos[0], max(a1.pos[1], 0.15), CARRY_Z + 0.05])
        while not red_placed[0]:
            yield a1.target()
        yield from a1.hold(3)
        red = world.object_positions()["cube_red"]
        yield from a1.place("cube_blue", red[:2], bottom_z=red[2] + scene.CUBE_HALF + 0.006)
        yield from a1.move(scene.home_pose(1, 2)[0])

    g0, g1 = arm0(), arm1()
    while True:
        t0, t1 = next(g0, None), next(g1, None)
        if t0 is None and t1 is None:
            break
        yield [t0 or a0.target(), t1 or a1.target()]
    for _ in range(3):
        yield [a0.target(), a1.target()]


EXPERTS = {
    "lift": lift,
    "pick_place": pick_place,
    "knock_down": knock_down,
    "stack_two": stack_two,
    "stack_three": stack_three,
}


class KinovaController:
    """Pinch targets -> the dataset's action: per arm IK joint targets (float32) + gripper command."""

    def __init__(self, world: SimWorld):
        self.world = world
        self.q = [q.copy() for q in world.home_q]

    def action(self, targets: list[Target]) -> np.ndarray:
        out = []
        for i, (pos, rot, grip) in enumerate(targets):
            self.q[i] = self.world.iks[i].solve(self.q[i], pos, rot, iters=6)
            out.append(np.r_[self.q[i], grip])
        # float32 as stored in the dataset, so replaying the dataset reproduces the episode exactly
        return np.concatenate(out).astype(np.float32)


def run_expert(world: SimWorld, seed: int, on_step=None) -> bool:
    """Reset to `seed`, run the task's expert to the end; on_step(world, action_or_None) is called BEFORE each
    control step (the frame is observed, then the action applied). Returns the success check at the end."""
    world.reset(seed)
    ctrl = KinovaController(world) if world.embodiment == "kinova" else None
    for targets in EXPERTS[world.task](world):
        if ctrl is not None:
            action = ctrl.action(targets)
            if on_step:
                on_step(world, action)
            world.step_kinova(action)
        else:
            if on_step:
                on_step(world, None)
            world.step_umi(targets)
    return world.success()
