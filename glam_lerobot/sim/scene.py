"""The table-top scene: table, objects, the robots of one embodiment, two cameras, shadowless lights.

Geometry is primitives only, tessellated coarsely (12 slices: half the render time of MuJoCo's default 28 at
96 px, and no visible difference), and lights cast no shadows: on a CPU the shadow pass and triangle count are
what make MuJoCo rendering slow (reference/mujoco-sim.md section 4). World frame: table top at z = 0, +x away from
the robot base(s), the workspace centred near the origin.
"""

from __future__ import annotations

import numpy as np

from glam_lerobot.sim import models

TIMESTEP = 0.002  # physics step (s); the control step is 1 / schema.DEFAULT_FPS
CUBE_HALF = 0.025
BOWL_RADIUS = 0.085  # inner radius of the wall ring
BOWL_HEIGHT = 0.045
BOTTLE_HEIGHT = 0.22

# Arm bases (x, y) on the table: one arm in the middle, two arms side by side sharing the workspace.
ARM_BASES = {1: [(-0.45, 0.0)], 2: [(-0.45, -0.28), (-0.45, 0.28)]}
HOME_X, HOME_Z = -0.15, 0.25  # start pose of the pinch point (both embodiments), gripper pointing down

# Cameras: (position, point looked at). `overhead` looks down on the workspace from slightly beyond it, so the
# arm above the gripper hides less of it; `front` faces the robot from across the table.
CAMERAS = {
    "overhead": ((0.2, 0.0, 0.85), (-0.06, 0.0, 0.0)),
    "front": ((0.65, 0.0, 0.42), (-0.12, 0.0, 0.06)),
}
CAMERA_FOVY = {"overhead": 45, "front": 45}

OBJECT_RGBA = {
    "cube": "0.85 0.15 0.12 1",
    "cube_red": "0.85 0.15 0.12 1",
    "cube_green": "0.15 0.7 0.2 1",
    "cube_blue": "0.15 0.3 0.85 1",
    "bowl": "0.9 0.88 0.8 1",
    "bottle": "0.95 0.8 0.1 1",
}


def _v(x) -> str:
    return " ".join(f"{float(a):.6g}" for a in x)


def camera_xyaxes(pos, target) -> np.ndarray:
    """MuJoCo `xyaxes` for a camera at `pos` looking at `target` with world +z up (+x up if looking down)."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    z = pos - target
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    return np.r_[x, np.cross(z, x)]


def home_pose(arm: int, arms: int) -> tuple[np.ndarray, np.ndarray]:
    """Start position and rotation (3x3) of arm `arm`'s pinch frame: above the table, pointing down."""
    y = ARM_BASES[arms][arm][1]
    return np.array([HOME_X, y * 0.6, HOME_Z]), topdown(0.0)


def topdown(yaw: float) -> np.ndarray:
    """Rotation of a pinch frame pointing down (z = -world z) with its opening axis at `yaw` about world z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def object_xml(name: str, kind: str) -> str:
    rgba = OBJECT_RGBA.get(name, OBJECT_RGBA.get(kind, "0.5 0.5 0.5 1"))
    if kind == "cube":
        return f"""
    <body name="{name}" pos="0 0 {CUBE_HALF}">
      <freejoint name="{name}"/>
      <geom class="object" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.08" rgba="{rgba}"/>
    </body>"""
    if kind == "bowl":
        # A flat dish and a ring of 16 wall segments (primitives only). The walls stand on the dish, 1 cm above
        # the table, so only the dish touches the table (16 wall-table contacts cost 4x the physics time).
        n, t = 16, 0.006
        walls = "".join(
            f'\n      <geom class="object" type="box" size="{t} {BOWL_RADIUS * np.tan(np.pi / n) + t:.4f} '
            f'{BOWL_HEIGHT / 2}" pos="{_v([(BOWL_RADIUS + t) * np.cos(a), (BOWL_RADIUS + t) * np.sin(a), 0.01 + BOWL_HEIGHT / 2])}" '
            f'euler="0 0 {a:.5f}" mass="0.02" rgba="{rgba}"/>'
            for a in np.arange(n) * 2 * np.pi / n
        )
        return f"""
    <body name="{name}" pos="0 0 0">
      <freejoint name="{name}"/>
      <geom class="object" type="cylinder" size="{BOWL_RADIUS + 2 * t} 0.004" pos="0 0 0.004" mass="0.2" rgba="{rgba}"/>{walls}
    </body>"""
    if kind == "bottle":
        # A base wider than the body: a push from above (even off-centre, within the base) has no lever to
        # topple it; a push on its upper half from the side tips it past ~35 degrees and it falls.
        return f"""
    <body name="{name}" pos="0 0 0">
      <freejoint name="{name}"/>
      <geom class="object" type="cylinder" size="0.045 0.012" pos="0 0 0.012" mass="0.12" rgba="0.8 0.2 0.1 1"/>
      <geom class="object" type="cylinder" size="0.034 0.07" pos="0 0 0.094" mass="0.12" rgba="{rgba}"/>
      <geom class="object" type="cylinder" size="0.016 0.028" pos="0 0 0.192" mass="0.02" rgba="{rgba}"/>
    </body>"""
    raise ValueError(f"unknown object kind {kind!r}")


def scene_xml(name: str, objects: list[tuple[str, str]], embodiment: str, arms: int) -> str:
    """Full MJCF text. objects: (name, kind) pairs; embodiment 'kinova' (Gen3 arms) or 'umi' (floating grippers)."""
    robots, actuators, contacts, equality = [], [], [], []
    for i, (bx, by) in enumerate(ARM_BASES[arms]):
        if embodiment == "kinova":
            p = f"arm{i}/"
            robots.append(models.gen3_xml(p, (bx, by, 0.0), (1, 0, 0, 0)))
            actuators.append(models.gen3_actuators_xml(p))
        else:
            p = f"umi{i}/"
            pos, rot = home_pose(i, arms)
            robots.append(models.umi_xml(p, pos, _mat2quat(rot)))
            actuators.append(models.fingers_actuators_xml(p))
            equality.append(models.umi_weld_xml(p))
        contacts.append(models.fingers_exclude_xml(p))
    cams = "".join(
        f'\n    <camera name="{cam}" pos="{_v(pos)}" xyaxes="{_v(camera_xyaxes(pos, tgt))}" fovy="{CAMERA_FOVY[cam]}"/>'
        for cam, (pos, tgt) in CAMERAS.items()
    )
    objs = "".join(object_xml(n, k) for n, k in objects)
    return f"""<mujoco model="{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="640" offheight="640"/>
    <quality offsamples="0" shadowsize="0" numslices="12" numstacks="6" numquads="1"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    <geom friction="1 0.005 0.0001"/>
    <default class="link"><geom contype="0" conaffinity="0" group="1" rgba="{models.ARM_RGBA}"/></default>
    <default class="gripper"><geom group="1" rgba="{models.GRIPPER_RGBA}"/></default>
    <default class="pad"><geom group="1" rgba="0.1 0.1 0.1 1" friction="1.5 0.02 0.001" condim="4"/></default>
    <default class="object"><geom condim="4" friction="1 0.01 0.001"/></default>
  </default>
  <worldbody>
    <light name="top" pos="0 0 2.5" dir="0 0 -1" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" rgba="0.35 0.37 0.4 1"/>
    <geom name="backdrop" type="box" size="0.02 1.5 0.8" pos="-1.0 0 0" rgba="0.55 0.6 0.65 1" contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="0.6 0.75 0.02" pos="-0.15 0 -0.02" rgba="0.72 0.6 0.45 1"/>{cams}{"".join(robots)}{objs}
  </worldbody>
  <contact>
    {"".join(contacts)}
  </contact>
  <equality>
    {"".join(equality)}
  </equality>
  <actuator>
    {"".join(actuators)}
  </actuator>
</mujoco>"""


def _mat2quat(rot: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(rot, float).ravel())
    return q
