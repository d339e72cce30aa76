"""Forward kinematics of the Kinova Gen3 7-DoF from its classic DH table (Kinova user guide convention).

T_i = Rz(q_i + theta_offset_i) Tz(d_i) Tx(a_i) Rx(alpha_i), and the base -> frame 0 transform is Rx(pi). Frame 7 is
the tool interface (the bracelet's flange); the gripper's TCP lies `tcp_offset` metres further along its z axis.
The default is the 2F-85 pinch point 0.145 m out, the point and orientation (z = approach) that the simulator's
`pinch` site records as ee_pose, so real and simulated Kinova datasets mean the same frame. (The Kortex API's
default TCP is 0.12 m out.) Checked against a MuJoCo model of the URDF joint chain in
tests/test_ingest_kinova_fk.py (the DH table ignores two 0.175 mm wrist offsets).
"""

from __future__ import annotations

import numpy as np

# (alpha, a, d, theta offset) per joint
DH = np.array(
    [
        [np.pi / 2, 0.0, -0.28481, 0.0],
        [np.pi / 2, 0.0, -0.01175, np.pi],
        [np.pi / 2, 0.0, -0.42076, np.pi],
        [np.pi / 2, 0.0, -0.01275, np.pi],
        [np.pi / 2, 0.0, -0.31436, np.pi],
        [np.pi / 2, 0.0, 0.0, np.pi],
        [np.pi, 0.0, -0.167455, np.pi],
    ]
)
PINCH_DEPTH_2F85 = 0.145  # = glam_lerobot.sim.models.PINCH_DEPTH


def forward_kinematics(joints: np.ndarray, tcp_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., 7) joint angles -> position (..., 3) and rotation matrix (..., 3, 3) of the tool frame in the base frame."""
    q = np.asarray(joints, dtype=np.float64)
    batch = q.shape[:-1]
    q = q.reshape(-1, 7)
    T = np.broadcast_to(np.diag([1.0, -1.0, -1.0, 1.0]), (len(q), 4, 4)).copy()  # Rx(pi)
    for i, (alpha, a, d, offset) in enumerate(DH):
        th = q[:, i] + offset
        ct, st, ca, sa = np.cos(th), np.sin(th), np.cos(alpha), np.sin(alpha)
        A = np.zeros((len(q), 4, 4))
        A[:, 0, 0], A[:, 0, 1], A[:, 0, 2], A[:, 0, 3] = ct, -st * ca, st * sa, a * ct
        A[:, 1, 0], A[:, 1, 1], A[:, 1, 2], A[:, 1, 3] = st, ct * ca, -ct * sa, a * st
        A[:, 2, 1], A[:, 2, 2], A[:, 2, 3] = sa, ca, d
        A[:, 3, 3] = 1.0
        T = T @ A
    pos = T[:, :3, 3] + tcp_offset * T[:, :3, 2]
    return pos.reshape(*batch, 3), T[:, :3, :3].reshape(*batch, 3, 3)
