"""LeRobot env plugin: `--env.type=glam_kinova --env.task=<task>` for lerobot-eval and lerobot-train.

The installed distribution `lerobot_env_glam` imports this module (LeRobot imports every `lerobot_env_*`
distribution), which registers the EnvConfig below and the Gymnasium ids `gym_glam_kinova/<task>`. The env
keys map onto the dataset columns written by `sim record`, so a policy trained on a Kinova sim dataset runs here
unchanged: pixels/overhead, pixels/front -> observation.images.*, agent_pos -> observation.state,
ee_pose -> observation.ee_pose, action -> action.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import gymnasium as gym
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig

from glam_lerobot import schema
from glam_lerobot.sim import env as sim_env  # registers gym_glam_kinova/<task>
from glam_lerobot.sim import tasks


@EnvConfig.register_subclass("glam_kinova")
@dataclass
class GlamKinovaEnvConfig(EnvConfig):
    task: str | None = "stack_two"
    fps: int = schema.DEFAULT_FPS
    image_size: int = schema.DEFAULT_IMAGE_SIZE
    episode_length: int | None = None  # control steps; the task's own limit when unset
    trace_dir: str | None = None  # each rollout's poses, joints and actions: DIR/seed-<seed>.npz (smoothness.py)
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(
        default_factory=lambda: {
            **{f"pixels/{cam}": schema.image_key(cam) for cam in schema.CAMERAS},
            "agent_pos": schema.STATE,
            "ee_pose": schema.EE_POSE,
            "action": schema.ACTION,
        }
    )

    def __post_init__(self):
        spec = tasks.check_task(self.task)
        arms, size = spec.arms, self.image_size
        if not self.features:
            self.features = {
                **{
                    f"pixels/{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=(size, size, 3))
                    for cam in schema.CAMERAS
                },
                "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(schema.STATE_DIM_PER_ARM * arms,)),
                "ee_pose": PolicyFeature(type=FeatureType.STATE, shape=(schema.EE_POSE_DIM_PER_ARM * arms,)),
                "action": PolicyFeature(type=FeatureType.ACTION, shape=(schema.STATE_DIM_PER_ARM * arms,)),
            }

    @property
    def max_steps(self) -> int:
        return self.episode_length or tasks.TASK_SPECS[self.task].max_steps

    @property
    def gym_kwargs(self) -> dict:
        return {
            "task": self.task,
            "embodiment": "kinova",
            "image_size": self.image_size,
            "max_episode_steps": self.max_steps,
            "trace_dir": self.trace_dir,
        }

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        # A module-level factory (not gym.make on an id): AsyncVectorEnv's forkserver children import it by name,
        # so they need no plugin discovery of their own.
        make_one = functools.partial(_make, self.task, self.image_size, self.max_steps, self.trace_dir)
        if use_async_envs and n_envs > 1:
            vec = gym.vector.AsyncVectorEnv(
                [make_one] * n_envs, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
        else:
            vec = gym.vector.SyncVectorEnv([make_one] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        return {self.type: {0: vec}}


def _make(task: str, image_size: int, max_steps: int, trace_dir: str | None = None) -> gym.Env:
    return gym.wrappers.TimeLimit(
        sim_env.GlamSimEnv(task, "kinova", image_size=image_size, trace_dir=trace_dir), max_episode_steps=max_steps
    )
