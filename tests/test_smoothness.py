"""Appendix B's smoothness scores and Figure 7's comparison with the expert, from the traces lerobot-eval leaves."""

import numpy as np
import pytest

from glam_lerobot import schema, smoothness


def _poses(x: np.ndarray) -> np.ndarray:
    """End-effector poses moving along x (identity rotation, open gripper)."""
    pose = np.zeros((len(x), schema.EE_POSE_DIM_PER_ARM))
    pose[:, 0], pose[:, 3], pose[:, 7] = x, 1.0, 1.0
    return pose


def test_a_jittery_reach_scores_rougher_than_the_smooth_one_on_both_scores():
    t = np.linspace(0, 1, 81)
    smooth = 0.3 * (10 * t**3 - 15 * t**4 + 6 * t**5)  # a minimum-jerk reach of 30 cm in 8 s at 10 Hz
    jitter = smooth + 0.004 * np.sin(2 * np.pi * 4 * t * 8)  # the same reach with a 4 Hz tremor of 4 mm
    a = smoothness.scores({"ee_pose": _poses(smooth), "success": True, "fps": 10})
    b = smoothness.scores({"ee_pose": _poses(jitter), "success": True, "fps": 10})
    assert a["steps"] == 80 and a["jerk"] > b["jerk"] + 1.0  # less negative is smoother
    assert a["fft"] < b["fft"]  # lower is smoother
    # the same path traced at twice the speed is as smooth in shape: the jerk score is dimensionless in amplitude
    c = smoothness.scores({"ee_pose": _poses(2 * smooth), "success": True, "fps": 10})
    assert c["jerk"] == pytest.approx(a["jerk"])
    assert smoothness.scores({"ee_pose": _poses(smooth[:4]), "success": False, "fps": 10}) is None  # too short


def test_the_env_traces_a_rollout_that_matches_the_experts_demonstration_of_its_seed(tmp_path):
    """Replaying the scripted expert's actions through the env (as lerobot-eval steps it) leaves a trace with the
    expert's own joint trajectory, scores and a Figure 7 plot of the two."""
    from glam_lerobot.sim.env import GlamSimEnv

    seed = 9_000_123
    expert = smoothness.expert_trace("lift", seed)
    actions = []
    from glam_lerobot.sim.experts import run_expert
    from glam_lerobot.sim.world import SimWorld

    run_expert(SimWorld("lift", "kinova"), seed, lambda _w, a: actions.append(a))
    env = GlamSimEnv("lift", "kinova", image_size=32, trace_dir=str(tmp_path / "traces"))
    env.reset(seed=seed)
    for a in actions:
        env.step(a)
    env.reset(seed=seed + 1)  # the next rollout starts: the finished one is written
    env.close()  # this one never stepped: nothing is written for it
    (trace,) = smoothness.read_traces(tmp_path / "traces")
    assert int(trace["seed"]) == seed and bool(trace["success"]) == expert["success"] is True
    assert trace["state"].shape == expert["state"].shape and np.allclose(trace["state"], expert["state"], atol=1e-5)
    summary = smoothness.summarise(tmp_path / "traces")
    assert summary["all"]["n"] == summary["successful"]["n"] == 1 and np.isfinite(summary["all"]["jerk_mean"])
    smoothness.plot_against_expert({"replayed expert": trace}, expert, tmp_path / "fig7.png", "lift")
    assert (tmp_path / "fig7.png").stat().st_size > 10_000
