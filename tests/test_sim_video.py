"""A recorded sim video shows the colours the live env renders: what a policy trains on is what lerobot-eval shows it.

The user records a tiny Kinova dataset (with masks, so segmentation rendering is toggled between RGB frames), decodes
it with stock LeRobot, and compares each frame with the gym env's own render of the same state (reset from the
episode's seed, then the recorded actions replayed). Only codec loss may separate them: no brightening from the
renderer's state or from a colour-range mismatch between LeRobot's encoder and decoder.
"""

from __future__ import annotations

import numpy as np
import pytest

from glam_lerobot import schema
from glam_lerobot.sim import record
from glam_lerobot.sim.env import GlamSimEnv

SIZE, SEED = 64, 0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("video") / "kinova_lift"
    summary = record.record(
        "lift", "kinova", 1, SEED, root, repo_id="me/kinova-lift", image_size=SIZE, masks=True, workers=1
    )
    assert summary.episodes == 1
    return LeRobotDataset("me/kinova-lift", root=root, video_backend="pyav")


def decoded(ds, index: int, cam: str) -> np.ndarray:
    """Frame `index` of camera `cam` as LeRobot decodes it: (H, W, 3) levels 0-255."""
    return ds[index][schema.image_key(cam)].numpy().transpose(1, 2, 0) * 255.0


def test_recorded_video_matches_the_env_render_of_the_same_state(recorded):
    env = GlamSimEnv("lift", "kinova", image_size=SIZE)
    try:
        obs, info = env.reset(seed=SEED)
        n = recorded.meta.episodes[0]["dataset_to_index"]
        steps = [0, 1, 2, n // 2, n - 1]
        for t in range(n):
            if t > 0:
                obs, *_ = env.step(recorded[t - 1][schema.ACTION].numpy())
            if t not in steps:
                continue
            for cam in schema.CAMERAS:
                rendered = obs["pixels"][cam].astype(np.float64)
                video = decoded(recorded, t, cam)
                err = np.abs(video - rendered)
                assert err.mean() < 6, f"frame {t} {cam}: mean abs error {err.mean():.2f} levels"
                # a colour shift (range/matrix mismatch, different lighting) moves the mean; codec noise does not
                shift = (video - rendered).reshape(-1, 3).mean(0)
                assert np.abs(shift).max() < 3, f"frame {t} {cam}: mean colour shift {shift} levels"
    finally:
        env.close()


def test_recorded_frames_are_what_the_recorder_rendered(recorded):
    # the writer's input: the recorder's frames for the same seed, masks on (segmentation toggled between frames)
    record.cache().clear()
    success, frames = record.record_episode("lift", "kinova", SEED, SIZE, masks=True)
    assert success and len(frames[schema.image_key("front")]) == recorded.meta.episodes[0]["dataset_to_index"]
    for cam in schema.CAMERAS:
        raw = frames[schema.image_key(cam)][0].astype(np.float64)
        assert np.abs(decoded(recorded, 0, cam) - raw).mean() < 6
    env = GlamSimEnv("lift", "kinova", image_size=SIZE)
    try:
        obs, _ = env.reset(seed=SEED)
        for cam in schema.CAMERAS:  # the renderer is deterministic: the env and the recorder agree exactly
            np.testing.assert_array_equal(obs["pixels"][cam], frames[schema.image_key(cam)][0])
    finally:
        env.close()
