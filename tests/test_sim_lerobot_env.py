"""The LeRobot env plugin: stock `lerobot-eval --env.type=glam_kinova` finds our tasks with no extra flags."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from lerobot.envs.configs import EnvConfig

from glam_lerobot import schema
from glam_lerobot.sim import TASKS


@dataclass
class Args:  # the `env` field of lerobot-eval's EvalPipelineConfig, parsed the same way (draccus)
    env: EnvConfig


def test_plugin_is_discovered_and_env_type_parses_like_lerobot_eval():
    import draccus
    from lerobot.envs.factory import make_env
    from lerobot.envs.utils import env_to_policy_features, preprocess_observation
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()  # what lerobot-train / lerobot-eval do: imports lerobot_env_glam
    cfg = draccus.parse(Args, args=["--env.type=glam_kinova", "--env.task=lift", "--env.image_size=32"]).env
    assert cfg.type == "glam_kinova" and cfg.gym_id == "gym_glam_kinova/lift"
    envs = make_env(cfg, n_envs=2)
    vec = envs["glam_kinova"][0]
    assert vec.call("_max_episode_steps") == (80, 80)
    obs, _ = vec.reset(seed=[0, 1])
    batch = preprocess_observation(obs)
    assert batch[schema.image_key("overhead")].shape == (2, 3, 32, 32)
    assert batch[schema.STATE].shape == (2, 8) and batch[schema.EE_POSE].shape == (2, 10)
    vec.action_space.seed(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert info["is_success"].dtype == bool and not info["is_success"].any()
    vec.close()
    # the policy features the env announces are the columns `sim record` writes, with the same shapes
    from glam_lerobot.sim.record import dataset_features

    recorded = dataset_features("lift", "kinova", image_size=32)
    for key, feature in env_to_policy_features(cfg).items():
        shape = recorded[key]["shape"]
        assert feature.shape == (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


@pytest.mark.parametrize("task", ["stack_three"])
def test_two_arm_task_doubles_state_and_action(task):
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cfg = EnvConfig.get_choice_class("glam_kinova")(task=task)
    assert cfg.features["agent_pos"].shape == (16,) and cfg.features["action"].shape == (16,)
    assert cfg.features["ee_pose"].shape == (20,)
    assert task in TASKS


def test_stock_lerobot_eval_runs_a_policy_on_our_env(tmp_path):
    """`lerobot-eval` end to end: a scratch (random-weight) ACT policy, one short lift episode, on CPU."""
    out = tmp_path / "eval"
    cmd = [
        str(Path(sys.executable).parent / "lerobot-eval"),
        "--env.type=glam_kinova",
        "--env.task=lift",
        "--env.image_size=32",
        "--env.episode_length=8",
        "--policy.type=act",
        "--policy.device=cpu",
        "--policy.pretrained_backbone_weights=null",
        "--policy.dim_model=32",
        "--policy.n_heads=2",
        "--policy.dim_feedforward=64",
        "--policy.n_encoder_layers=1",
        "--policy.n_decoder_layers=1",
        "--policy.chunk_size=4",
        "--policy.n_action_steps=4",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        f"--output_dir={out}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 1 and overall["pc_success"] == 0.0  # random weights do not lift cubes
    assert np.isfinite(overall["avg_sum_reward"])
