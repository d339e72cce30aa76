"""Damped-least-squares inverse kinematics for one Gen3 arm (reference/mujoco-sim.md section 3).

Pure numpy on MuJoCo's site Jacobian, so it needs no QP solver and costs well under a millisecond per control
step. A small null-space pull towards the start posture keeps the elbow where the scripted motions expect it.
"""

from __future__ import annotations

import mujoco
import numpy as np


def rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-frame rotation error taking `current` to `target` (3x3 each): 0.5 * sum_i c_i x t_i, the usual
    small-angle orientation error (right direction, fine below 90 degrees), written as vee(T C^T - C T^T) / 2."""
    m = target @ current.T
    return 0.5 * np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])


class ArmIK:
    def __init__(self, model: mujoco.MjModel, prefix: str, damping: float = 0.03, posture_gain: float = 0.05):
        self.model = model
        self.data = mujoco.MjData(model)  # scratch: kinematics only, never stepped
        joints = [model.joint(f"{prefix}joint_{i + 1}") for i in range(7)]
        self.qadr = np.array([model.jnt_qposadr[j.id] for j in joints])
        self.dofs = np.array([model.jnt_dofadr[j.id] for j in joints])
        self.limited = np.array([bool(model.jnt_limited[j.id]) for j in joints])
        self.lo = np.array([model.jnt_range[j.id][0] for j in joints])
        self.hi = np.array([model.jnt_range[j.id][1] for j in joints])
        self.site = model.site(f"{prefix}pinch").id
        self.damping, self.posture_gain = damping, posture_gain
        self.posture: np.ndarray | None = None
        self._jp, self._jr = np.zeros((3, model.nv)), np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pinch-site position and rotation for joint positions q."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, q: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int = 8, tol: float = 1e-4) -> np.ndarray:
        """Joint positions reaching (pos, rot), starting from q."""
        q = np.array(q, dtype=np.float64)
        damp = self.damping**2 * np.eye(6)
        for _ in range(iters):
            x, r = self.forward(q)
            err = np.concatenate([pos - x, rotation_error(r, rot)])
            if np.abs(err).max() < tol:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jp, self._jr, self.site)
            jac = np.concatenate([self._jp[:, self.dofs], self._jr[:, self.dofs]])
            pinv = jac.T @ np.linalg.inv(jac @ jac.T + damp)  # damped pseudo-inverse
            dq = pinv @ err
            if self.posture is not None:  # pull towards the start posture inside the null space
                pull = self.posture_gain * (self.posture - q)
                dq += pull - pinv @ (jac @ pull)
            q = q + dq
            q[self.limited] = np.clip(q[self.limited], self.lo[self.limited], self.hi[self.limited])
        return q
