"""MJCF for the robots, authored here from published kinematic facts (no meshes, no copied model files).

* Kinova Gen3 7-DoF: the parent->child offsets and joint axes of Kinova's URDF (GEN3_URDF_V12; the table in
  reference/mujoco-sim.md section 2), URDF link masses, URDF "hard" limits on joints 2/4/6 (the other four are
  continuous), capsules of radius 46 mm (shoulder to forearm) and 35 mm (wrist) along each link's offset.
  Position actuators as in Menagerie's gen3 (kp 2000/kv 100 on joints 1-4, kp 500/kv 50 on 5-7) with gravity
  compensation, so a joint target is reached without a steady-state sag.
* A 2F-85-like parallel gripper on the tool interface: two slide fingers, 85 mm stroke, one position actuator
  per finger driven by the same command. Its `pinch` site (between the pads, z = approach axis, x = the
  direction the fingers open) is the end-effector frame of every observation.
* A UMI-like hand-held gripper: the same finger geometry on a handle with a camera box, free-floating and welded
  to a mocap body (no arm, no joint actions). Its body frame IS the pinch frame, so the mocap pose is the
  commanded end-effector pose.

Every name is prefixed per arm ("arm0/", "arm1/", "umi0/", ...) so that two of them share one scene.
"""

from __future__ import annotations

import numpy as np

from glam_lerobot import schema

FINGER_TRAVEL = schema.GRIPPER_MAX_OPENING / 2  # each finger's stroke (m)
PINCH_DEPTH = 0.145  # tool interface -> pinch site along the approach axis (Menagerie's 2F-85 figure)

# (body, pos in parent, quat in parent (w x y z), mass kg, joint range or None for continuous, capsule radius,
#  vector to the next joint in this body's frame). Values from the Gen3 URDF.
GEN3_CHAIN = [
    ("shoulder", (0, 0, 0.15643), (0, 1, 0, 0), 1.3773, None, 0.046, (0, 0.005375, -0.12838)),
    (
        "half_arm_1",
        (0, 0.005375, -0.12838),
        (0.7071068, 0.7071068, 0, 0),
        1.1636,
        2.41,
        0.046,
        (0, -0.21038, -0.006375),
    ),
    (
        "half_arm_2",
        (0, -0.21038, -0.006375),
        (0.7071068, -0.7071068, 0, 0),
        1.1636,
        None,
        0.046,
        (0, 0.006375, -0.21038),
    ),
    ("forearm", (0, 0.006375, -0.21038), (0.7071068, 0.7071068, 0, 0), 0.9302, 2.66, 0.046, (0, -0.20843, -0.006375)),
    (
        "spherical_wrist_1",
        (0, -0.20843, -0.006375),
        (0.7071068, -0.7071068, 0, 0),
        0.6781,
        None,
        0.035,
        (0, 0.00017505, -0.10593),
    ),
    (
        "spherical_wrist_2",
        (0, 0.00017505, -0.10593),
        (0.7071068, 0.7071068, 0, 0),
        0.6781,
        2.23,
        0.035,
        (0, -0.10593, -0.00017505),
    ),
    ("bracelet", (0, -0.10593, -0.00017505), (0.7071068, -0.7071068, 0, 0), 0.5006, None, 0.035, (0, 0, -0.061525)),
]
GEN3_BASE_MASS = 1.697
# Actuator gains and force limits per joint (Menagerie gen3: large actuators on 1-4, small on 5-7).
GEN3_KP = (2000, 2000, 2000, 2000, 500, 500, 500)
GEN3_KV = (100, 100, 100, 100, 50, 50, 50)
GEN3_FORCE = (105, 105, 105, 105, 52, 52, 52)
# A joint configuration with the gripper pointing straight down in front of the base (robosuite's init_qpos);
# the exact start pose is solved from it by IK (see world.py).
GEN3_TOPDOWN_SEED = np.array([0.0, 0.65, 0.0, 1.89, 0.0, 0.6, -np.pi / 2])

ARM_RGBA = "0.62 0.64 0.68 1"
GRIPPER_RGBA = "0.15 0.15 0.17 1"
UMI_RGBA = "0.85 0.55 0.15 1"


def _v(x) -> str:
    return " ".join(f"{float(a):.6g}" for a in x)


def fingers_xml(p: str, rgba: str) -> str:
    """Two slide fingers about the pinch point (origin of the enclosing frame; z = approach, x = opening)."""
    out = []
    for side, sign in (("left", 1), ("right", -1)):
        out.append(f"""
        <body name="{p}{side}_finger" pos="0 0 0">
          <joint name="{p}{side}_finger" type="slide" axis="{sign} 0 0" range="0 {FINGER_TRAVEL}" armature="0.01" damping="1"/>
          <inertial pos="{sign * 0.01} 0 -0.02" mass="0.05" diaginertia="2e-5 2e-5 2e-5"/>
          <geom name="{p}{side}_pad" class="pad" type="box" size="0.006 0.011 0.018" pos="{sign * 0.006} 0 0"/>
          <geom name="{p}{side}_link" class="gripper" type="box" size="0.005 0.012 0.025"
                pos="{sign * 0.011} 0 -0.04" rgba="{rgba}"/>
        </body>""")
    return "".join(out)


def gen3_xml(p: str, pos, quat) -> str:
    """One Gen3 arm with the parallel gripper, rooted at `pos`/`quat` in the world."""
    head = f"""
    <body name="{p}base" pos="{_v(pos)}" quat="{_v(quat)}" gravcomp="1">
      <inertial pos="0 0 0.08" mass="{GEN3_BASE_MASS}" diaginertia="0.005 0.005 0.003"/>
      <geom class="link" type="cylinder" size="0.05 0.075" pos="0 0 0.075"/>"""
    body, tail = "", ""
    for i, (name, bpos, bquat, mass, rng, radius, nxt) in enumerate(GEN3_CHAIN):
        limit = f'range="{-rng} {rng}"' if rng is not None else 'limited="false"'
        nxt = np.asarray(nxt)
        body += f"""
      <body name="{p}{name}" pos="{_v(bpos)}" quat="{_v(bquat)}" gravcomp="1">
        <joint name="{p}joint_{i + 1}" axis="0 0 1" {limit} armature="0.1" damping="0.1"/>
        <inertial pos="{_v(nxt / 2)}" mass="{mass}" diaginertia="{_v([mass * 0.004] * 3)}"/>
        <geom class="link" type="capsule" size="{radius}" fromto="0 0 0 {_v(nxt)}"/>"""
        tail += "\n      </body>"
    # Tool interface: 0.061525 m beyond the bracelet joint, rotated pi about x so that +z is the approach axis.
    gripper = f"""
        <body name="{p}gripper" pos="0 0 -0.061525" quat="0 1 0 0" gravcomp="1">
          <inertial pos="0 0 0.06" mass="0.9" diaginertia="0.002 0.002 0.001"/>
          <geom class="gripper" type="cylinder" size="0.04 0.04" pos="0 0 0.04"/>
          <geom class="gripper" type="box" size="0.03 0.025 0.015" pos="0 0 0.095"/>
          <body name="{p}pinch" pos="0 0 {PINCH_DEPTH}" gravcomp="1">
            <site name="{p}pinch" size="0.005" group="5"/>{fingers_xml(p, GRIPPER_RGBA)}
          </body>
        </body>"""
    return head + body + gripper + tail + "\n    </body>"


def gen3_actuators_xml(p: str) -> str:
    acts = []
    for i, (link, kp, kv, force) in enumerate(zip(GEN3_CHAIN, GEN3_KP, GEN3_KV, GEN3_FORCE, strict=True)):
        limit = link[4]
        ctrlrange = f'ctrlrange="{-limit} {limit}"' if limit is not None else 'ctrllimited="false"'
        acts.append(
            f'<position name="{p}joint_{i + 1}" joint="{p}joint_{i + 1}" kp="{kp}" kv="{kv}" '
            f'forcerange="{-force} {force}" {ctrlrange}/>'
        )
    return "\n    ".join(acts) + "\n    " + fingers_actuators_xml(p)


def fingers_actuators_xml(p: str) -> str:
    # A stiff position servo on each finger (the 2F-85 is not back-drivable): a cube is held with the force
    # limit (40 N) and a pad pressed against an edge does not get wedged open.
    return "\n    ".join(
        f'<position name="{p}{side}_finger" joint="{p}{side}_finger" kp="2000" kv="20" '
        f'ctrlrange="0 {FINGER_TRAVEL}" forcerange="-40 40"/>'
        for side in ("left", "right")
    )


def umi_xml(p: str, pos, quat) -> str:
    """A free-floating UMI-like gripper; its frame is the pinch frame. Welded to the mocap body `{p}target`."""
    return f"""
    <body name="{p}target" mocap="true" pos="{_v(pos)}" quat="{_v(quat)}"/>
    <body name="{p}gripper" pos="{_v(pos)}" quat="{_v(quat)}" gravcomp="1">
      <freejoint name="{p}free"/>
      <inertial pos="0 0 -0.1" mass="0.6" diaginertia="0.003 0.003 0.002"/>
      <site name="{p}pinch" size="0.005" group="5"/>
      <geom class="gripper" type="box" size="0.045 0.02 0.012" pos="0 0 -0.075" rgba="{UMI_RGBA}"/>
      <geom class="gripper" type="box" size="0.03 0.03 0.02" pos="0 0 -0.105" rgba="{UMI_RGBA}"/>
      <geom class="link" type="box" size="0.022 0.018 0.016" pos="0 0.035 -0.11" rgba="0.1 0.1 0.1 1"/>
      <geom class="link" type="capsule" size="0.016" fromto="0 0 -0.13 0 -0.02 -0.24" rgba="0.2 0.2 0.2 1"/>{fingers_xml(p, UMI_RGBA)}
    </body>"""


def fingers_exclude_xml(p: str) -> str:
    # The pads meet at the centre when closed on nothing; they must not push each other apart.
    return f'<exclude body1="{p}left_finger" body2="{p}right_finger"/>'


def umi_weld_xml(p: str) -> str:
    return f'<weld body1="{p}target" body2="{p}gripper" relpose="0 0 0 1 0 0 0" solref="0.02 1"/>'
