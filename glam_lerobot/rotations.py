"""Rotations in the canonical 6D form: the first two columns of the rotation matrix (Zhou et al., 2019).

Sources record rotations as axis-angle (UMI), quaternions (robomimic, ROS, MuJoCo) or matrices; the schema stores
all of them the same continuous way. scipy's Rotation does the conversions.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def matrix_to_6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): column 0 then column 1."""
    m = np.asarray(matrix)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt, so slightly off-manifold inputs (network outputs) still work."""
    r = np.asarray(rot6d, dtype=np.float64)
    a, b = r[..., :3], r[..., 3:]
    x = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (x * b).sum(-1, keepdims=True) * x
    y = b / np.linalg.norm(b, axis=-1, keepdims=True)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def rotvec_to_6d(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> (..., 6)."""
    rv = np.asarray(rotvec, dtype=np.float64)
    return matrix_to_6d(Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix()).reshape(*rv.shape[:-1], 6)


def quat_to_6d(quat: np.ndarray, scalar_first: bool = False) -> np.ndarray:
    """Quaternion (..., 4) -> (..., 6). ROS and robomimic store (x, y, z, w); MuJoCo stores (w, x, y, z)."""
    q = np.asarray(quat, dtype=np.float64).reshape(-1, 4)
    mats = Rotation.from_quat(q, scalar_first=scalar_first).as_matrix()
    return matrix_to_6d(mats).reshape(*np.shape(quat)[:-1], 6)


def ee_pose(position: np.ndarray, rot6d: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """Concatenate one arm's (T, 3) position, (T, 6) rotation and (T,) or (T, 1) gripper opening -> (T, 10)."""
    g = np.asarray(gripper).reshape(len(position), 1)
    return np.concatenate([position, rot6d, g], axis=-1).astype(np.float32)
