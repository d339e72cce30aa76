"""The DH forward kinematics used for Kinova bags agrees with MuJoCo on the URDF's own joint chain."""

from __future__ import annotations

import mujoco
import numpy as np

from glam_lerobot.ingest.kinova_fk import PINCH_DEPTH_2F85, forward_kinematics

# (body pos, body quat w x y z) of each joint's child body in its parent, from Kinova's GEN3_URDF_V12
CHAIN = [
    ("0 0 0.15643", "0 1 0 0"),
    ("0 0.005375 -0.12838", ".7071068 .7071068 0 0"),
    ("0 -0.21038 -0.006375", ".7071068 -.7071068 0 0"),
    ("0 0.006375 -0.21038", ".7071068 .7071068 0 0"),
    ("0 -0.20843 -0.006375", ".7071068 -.7071068 0 0"),
    ("0 0.00017505 -0.10593", ".7071068 .7071068 0 0"),
    ("0 -0.10593 -0.00017505", ".7071068 -.7071068 0 0"),
]


def gen3_model() -> mujoco.MjModel:
    body = '<site name="tool" pos="0 0 -0.061525" quat="0 1 0 0"/>'
    for i in reversed(range(7)):
        pos, quat = CHAIN[i]
        body = (
            f'<body name="l{i + 1}" pos="{pos}" quat="{quat}"><joint name="j{i + 1}" axis="0 0 1"/>'
            f'<geom size="0.03" mass="0.5"/>{body}</body>'
        )
    return mujoco.MjModel.from_xml_string(f"<mujoco><worldbody>{body}</worldbody></mujoco>")


def test_dh_matches_the_urdf_chain_within_half_a_millimetre():
    model = gen3_model()
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    q = rng.uniform(-2.2, 2.2, size=(200, 7))
    pos, rot = forward_kinematics(q)
    for i in range(len(q)):
        data.qpos[:] = q[i]
        mujoco.mj_kinematics(model, data)
        np.testing.assert_allclose(pos[i], data.site_xpos[0], atol=5e-4)
        np.testing.assert_allclose(rot[i], data.site_xmat[0].reshape(3, 3), atol=5e-3)
    # the TCP offset moves the point along the tool's approach axis
    tcp, _ = forward_kinematics(q[:3], tcp_offset=0.12)
    np.testing.assert_allclose(np.linalg.norm(tcp - pos[:3], axis=1), 0.12, atol=1e-9)


def test_real_robot_ee_pose_is_the_simulators_pinch_frame():
    """Kinova bags and HDF5 files get the ee_pose the simulator records, so real and sim datasets agree."""
    from glam_lerobot.sim.models import gen3_xml

    classes = "".join(f'<default class="{c}"/>' for c in ("link", "gripper", "finger", "pad"))
    xml = (
        f"<mujoco><default>{classes}</default><worldbody>{gen3_xml('a/', (0, 0, 0), (1, 0, 0, 0))}</worldbody></mujoco>"
    )
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    site = model.site("a/pinch").id
    for q in np.random.default_rng(1).uniform(-2.0, 2.0, size=(50, 7)):
        data.qpos[:7] = q
        mujoco.mj_kinematics(model, data)
        pos, rot = forward_kinematics(q, tcp_offset=PINCH_DEPTH_2F85)
        np.testing.assert_allclose(pos, data.site_xpos[site], atol=5e-4)
        np.testing.assert_allclose(rot, data.site_xmat[site].reshape(3, 3), atol=5e-3)
