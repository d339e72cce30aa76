"""`glam-lerobot sim record` / `sim replay`: a user records tiny datasets, loads them with stock LeRobot, replays."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from glam_lerobot import schema
from glam_lerobot.cli import app
from glam_lerobot.sim import experts, tasks

runner = CliRunner()


def sim(*args: str):
    return runner.invoke(app, ["sim", *map(str, args)])


@pytest.fixture(scope="module")
def kinova_stack(tmp_path_factory):
    """Two stack-two Kinova episodes at 32 px with ground-truth masks, written by the CLI."""
    root = tmp_path_factory.mktemp("rec") / "kinova_stack_two"
    res = sim(
        "record",
        "--embodiment",
        "kinova",
        "--task",
        "stack_two",
        "--episodes",
        2,
        "--seed",
        5,
        "--root",
        root,
        "--repo-id",
        "me/kinova-stack",
        "--image-size",
        32,
        "--masks",
        "--workers",
        1,
    )
    assert res.exit_code == 0, res.output
    assert "wrote 2 episodes" in res.output
    return root


def test_recorded_kinova_dataset_loads_with_stock_lerobot(kinova_stack):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("me/kinova-stack", root=kinova_stack)
    assert ds.num_episodes == 2 and ds.fps == schema.DEFAULT_FPS
    assert ds.meta.robot_type == "kinova_gen3"
    feats = ds.meta.features
    for cam in schema.CAMERAS:
        assert feats[schema.image_key(cam)]["dtype"] == "video"
        assert feats[schema.mask_key(cam)]["dtype"] == "image"
    assert feats[schema.STATE]["shape"] == (8,) and feats[schema.ACTION]["shape"] == (8,)
    frame = ds[3]
    assert frame[schema.image_key("front")].shape == (3, 32, 32)
    mask = frame[schema.mask_key("overhead")]
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0} and mask.sum() > 0  # binary, and the cubes are in view
    assert frame["task"] == tasks.TASK_SPECS["stack_two"].description
    # state is the joint positions the action targeted one step earlier (position servos track their targets)
    ep = ds.meta.episodes[0]
    state = np.stack([ds[i][schema.STATE].numpy() for i in range(ep["dataset_from_index"], ep["dataset_to_index"])])
    action = np.stack([ds[i][schema.ACTION].numpy() for i in range(ep["dataset_from_index"], ep["dataset_to_index"])])
    assert np.abs(state[1:, :7] - action[:-1, :7]).max() < 0.05
    assert action[:, 7].max() == pytest.approx(1.0) and action[0, 7] == 0.0  # it closed the gripper, from open
    meta = json.loads((kinova_stack / schema.GLAM_META_PATH).read_text())
    assert meta["embodiment"] == "kinova" and meta["task"] == "stack_two" and meta["arms"] == 1
    assert meta["source"]["format"] == "glam-sim" and meta["episode_seeds"] == [5, 6]


def test_recorded_dataset_plays_in_lerobot_dataset_viz(kinova_stack, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    viz = Path(sys.executable).with_name("lerobot-dataset-viz")
    out = subprocess.run(
        [
            str(viz),
            "--repo-id",
            "me/kinova-stack",
            "--root",
            str(kinova_stack),
            "--episode-index",
            "1",
            "--save",
            "1",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    recording = tmp_path / "me_kinova-stack_episode_1.rrd"
    assert recording.stat().st_size > 10_000  # rerun logged the episode's frames, not just a header


def test_replay_reproduces_the_recorded_episode(kinova_stack):
    res = sim("replay", "--root", kinova_stack, "--episode", 1)
    assert res.exit_code == 0, res.output
    assert "seed 6" in res.output and "success=True" in res.output and "reproduced" in res.output


def test_replay_detects_an_episode_that_does_not_reproduce(kinova_stack, tmp_path):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(kinova_stack, copy)
    meta = json.loads((copy / schema.GLAM_META_PATH).read_text())
    meta["episode_seeds"] = [6, 5]  # episode 0 now claims the other start
    (copy / schema.GLAM_META_PATH).write_text(json.dumps(meta))
    res = sim("replay", "--root", copy, "--episode", 0)
    assert res.exit_code == 1 and "NOT reproduced" in res.output
    res = sim("replay", "--root", copy, "--episode", 7)
    assert res.exit_code == 1 and "does not exist" in res.output


def test_umi_recording_has_poses_but_no_actions_and_cannot_be_replayed(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "umi_lift"
    res = sim(
        "record",
        "--embodiment",
        "umi",
        "--task",
        "lift",
        "--episodes",
        1,
        "--seed",
        5,
        "--root",
        root,
        "--image-size",
        32,
        "--workers",
        1,
    )
    assert res.exit_code == 0, res.output
    ds = LeRobotDataset("local/glam-sim-umi-lift", root=root)
    assert schema.ACTION not in ds.meta.features and schema.STATE not in ds.meta.features
    ee = np.stack([ds[i][schema.EE_POSE].numpy() for i in range(len(ds))])
    assert ee[:, 2].max() > 0.15 and ee[:, 9].min() < 0.06  # it went up with a closed gripper
    res = sim("replay", "--root", root)
    assert res.exit_code == 1 and "no robot actions" in res.output


def test_failed_expert_episodes_are_dropped_counted_and_left_out_of_the_seeds(tmp_path, monkeypatch):
    original = experts.EXPERTS["lift"]

    def clumsy(world):  # misses the cube on seed 1 only
        if world.seed == 1:
            yield from ([t] for t in experts.Arm(world, 0).hold(5))
        else:
            yield from original(world)

    monkeypatch.setitem(experts.EXPERTS, "lift", clumsy)
    root = tmp_path / "lift"
    res = sim(
        "record",
        "--embodiment",
        "kinova",
        "--task",
        "lift",
        "--episodes",
        3,
        "--root",
        root,
        "--image-size",
        32,
        "--workers",
        1,
    )
    assert res.exit_code == 0, res.output
    assert "wrote 2 episodes" in res.output and "skipped 1 episode" in res.output and "seed 1" in res.output
    meta = json.loads((root / schema.GLAM_META_PATH).read_text())
    assert meta["episode_seeds"] == [0, 2]
    res = sim("replay", "--root", root, "--episode", 1)  # the dataset's episode 1 is seed 2
    assert res.exit_code == 0 and "seed 2" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--embodiment", "franka", "--task", "lift", "--episodes", 1], "unknown embodiment 'franka'"),
        (["--embodiment", "kinova", "--task", "juggle", "--episodes", 1], "unknown task 'juggle'"),
        (["--embodiment", "kinova", "--task", "lift", "--episodes", 0], "positive"),
        (["--embodiment", "umi", "--task", "lift", "--episodes", -3], "positive"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, args, message):
    root = tmp_path / "out"
    res = sim("record", *args, "--root", root)
    assert res.exit_code == 1 and message in res.output
    assert not root.exists() and not list(tmp_path.iterdir())


def test_an_output_folder_holding_another_dataset_is_not_overwritten(kinova_stack):
    before = {p: p.stat().st_mtime_ns for p in kinova_stack.rglob("*")}
    res = sim(
        "record",
        "--embodiment",
        "kinova",
        "--task",
        "lift",
        "--episodes",
        1,
        "--root",
        kinova_stack,
        "--image-size",
        32,
        "--workers",
        1,
    )
    assert res.exit_code == 1 and "already exists" in res.output
    assert {p: p.stat().st_mtime_ns for p in kinova_stack.rglob("*")} == before
