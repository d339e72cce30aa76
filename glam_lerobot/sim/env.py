"""Gymnasium envs for the simulated tasks: `gym_glam_kinova/<task>` (and `gym_glam_umi/<task>`).

Kinova observation: {"pixels": {"overhead": HWC uint8, "front": HWC uint8}, "agent_pos": joint positions +
gripper opening (8 per arm), "ee_pose": pinch pose (10 per arm)}; action = the dataset's `action` (7 joint
position targets + gripper command in [0, 1] per arm). info["is_success"] is the task check; an episode ends
(terminated) on success, and TimeLimit truncates it at the task's step limit.

With `trace_dir` (lerobot-eval: `--env.trace_dir=DIR`) every rollout also leaves DIR/seed-<seed>.npz: the
end-effector pose, joint state and action of each step and whether it succeeded, what `glam_lerobot.smoothness`
scores (the paper's Appendix B) and plots against the expert's demonstration of the same seed (its Figure 7).

The UMI env has no agent_pos; its action is the end-effector target in the ee_pose layout (position, 6D
rotation, gripper command), which the floating gripper follows through its mocap weld.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from glam_lerobot import schema
from glam_lerobot.rotations import rot6d_to_matrix
from glam_lerobot.sim import tasks
from glam_lerobot.sim.render import Cameras, mask_frame, object_bodies
from glam_lerobot.sim.world import SimWorld


class GlamSimEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": schema.DEFAULT_FPS}

    def __init__(
        self,
        task: str = "stack_two",
        embodiment: str = "kinova",
        image_size: int = schema.DEFAULT_IMAGE_SIZE,
        masks: bool = False,
        render_mode: str = "rgb_array",
        trace_dir: str | None = None,
        **_ignored,
    ):
        self.world = SimWorld(task, embodiment)
        self.trace_dir, self._trace = trace_dir, None
        self.task, self.embodiment, self.render_mode = task, embodiment, render_mode
        self.task_description = self.world.spec.description  # read by lerobot-eval for language-conditioned policies
        self.cameras = Cameras(self.world.model, image_size)
        self.with_masks = masks
        self._mask_bodies = object_bodies(self.world.model, tasks.MASK_OBJECTS[task])
        arms, size = self.world.arms, int(image_size)
        image = spaces.Box(0, 255, (size, size, 3), np.uint8)
        obs = {
            "pixels": spaces.Dict(dict.fromkeys(schema.CAMERAS, image)),
            "ee_pose": spaces.Box(-np.inf, np.inf, (schema.EE_POSE_DIM_PER_ARM * arms,), np.float32),
        }
        if embodiment == "kinova":
            obs["agent_pos"] = spaces.Box(-np.inf, np.inf, (schema.STATE_DIM_PER_ARM * arms,), np.float32)
            lo, hi = [], []
            for ik in self.world.iks:
                lo += [*np.where(ik.limited, ik.lo, -2 * np.pi), 0.0]
                hi += [*np.where(ik.limited, ik.hi, 2 * np.pi), 1.0]
            self.action_space = spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32)
        else:
            self.action_space = spaces.Box(-np.inf, np.inf, (schema.EE_POSE_DIM_PER_ARM * arms,), np.float32)
        if masks:
            obs["masks"] = spaces.Dict(dict.fromkeys(schema.CAMERAS, image))
        self.observation_space = spaces.Dict(obs)
        self._last_pixels: dict | None = None

    def _obs(self) -> dict:
        pixels, masks = self.cameras.render(self.world.data, self._mask_bodies if self.with_masks else None)
        self._last_pixels = pixels
        obs = {"pixels": pixels, "ee_pose": self.world.ee_pose()}
        if self.embodiment == "kinova":
            obs["agent_pos"] = self.world.state()
        if masks is not None:
            obs["masks"] = {c: mask_frame(m) for c, m in masks.items()}
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.world.reset(episode_seed)
        self._save_trace()
        if self.trace_dir:
            self._trace = {"seed": episode_seed, "ee_pose": [self.world.ee_pose()], "action": [], "success": False}
            if self.embodiment == "kinova":
                self._trace["state"] = [self.world.state()]
        return self._obs(), {"is_success": False, "seed": episode_seed}

    def _save_trace(self) -> None:
        """Write the finished rollout's trace (a vector env's autoreset starts one that never steps: dropped)."""
        t, self._trace = self._trace, None
        if t is None or not t["action"]:
            return
        Path(self.trace_dir).mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(v) for k, v in t.items() if k != "seed"}
        np.savez(
            Path(self.trace_dir) / f"seed-{t['seed']:010d}.npz",
            seed=t["seed"],
            fps=self.metadata["render_fps"],
            **arrays,
        )

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if self.embodiment == "kinova":
            self.world.step_kinova(action)
        else:
            a = action.reshape(self.world.arms, schema.EE_POSE_DIM_PER_ARM).astype(np.float64)
            self.world.step_umi([(row[:3], rot6d_to_matrix(row[3:9]), row[9]) for row in a])
        success = self.world.success()
        if self._trace is not None:
            self._trace["action"].append(action)
            self._trace["ee_pose"].append(self.world.ee_pose())
            if "state" in self._trace:
                self._trace["state"].append(self.world.state())
            self._trace["success"] = bool(success)
        return self._obs(), float(success), success, False, {"is_success": success}

    def render(self):
        if self._last_pixels is None:
            self._last_pixels = self.cameras.rgb(self.world.data)
        return np.concatenate([self._last_pixels[c] for c in schema.CAMERAS], axis=1)

    def close(self):
        self._save_trace()
        self.cameras.close()


def make_env(
    task: str, embodiment: str = "kinova", image_size: int = schema.DEFAULT_IMAGE_SIZE, masks: bool = False
) -> gym.Env:
    """One env with the task's TimeLimit (so `_max_episode_steps` exists, as lerobot-eval expects)."""
    spec = tasks.check_task(task)
    tasks.check_embodiment(embodiment)
    env = GlamSimEnv(task, embodiment, image_size=image_size, masks=masks)
    return gym.wrappers.TimeLimit(env, max_episode_steps=spec.max_steps)


def gym_id(task: str, embodiment: str = "kinova") -> str:
    return f"gym_glam_{embodiment}/{task}"


def register_envs() -> None:
    """Register `gym_glam_<embodiment>/<task>` for every task (idempotent)."""
    for embodiment in tasks.EMBODIMENTS:
        for task, spec in tasks.TASK_SPECS.items():
            if gym_id(task, embodiment) not in gym.registry:
                gym.register(
                    id=gym_id(task, embodiment),
                    entry_point="glam_lerobot.sim.env:GlamSimEnv",
                    max_episode_steps=spec.max_steps,
                    kwargs={"task": task, "embodiment": embodiment},
                )


register_envs()
