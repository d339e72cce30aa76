"""Ground-truth masks of a simulated dataset, re-rendered by MuJoCo from its `sim.qpos` column.

A user records one tiny episode with `glam-lerobot sim record --masks` (the recorder renders masks live, while the
expert runs). With those columns removed (LeRobot's remove_feature), `masks add --backend groundtruth` must
re-render the same masks from the stored states alone.
"""

from pathlib import Path

import numpy as np
import pytest

from glam_lerobot import provenance, schema
from glam_lerobot.masks import add_masks
from glam_lerobot.masks.tracking import mask_iou

SIZE = 32


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from glam_lerobot.cli import app

    root = tmp_path_factory.mktemp("gt") / "lift"
    res = CliRunner().invoke(
        app,
        [
            "sim",
            "record",
            "--embodiment",
            "kinova",
            "--task",
            "lift",
            "--episodes",
            "1",
            "--seed",
            "3",
            "--root",
            str(root),
            "--image-size",
            str(SIZE),
            "--masks",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture(scope="module")
def unmasked(recorded) -> Path:
    from lerobot.datasets.dataset_tools import remove_feature
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/lift", root=recorded, video_backend="pyav")
    out = recorded.with_name("lift-unmasked")
    remove_feature(ds, [schema.mask_key(c) for c in schema.CAMERAS], output_dir=out, repo_id="local/lift")
    (out / schema.GLAM_META_PATH).write_bytes((recorded / schema.GLAM_META_PATH).read_bytes())
    return out


def masks_of(root: Path, camera: str) -> np.ndarray:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/lift", root=root, video_backend="pyav")
    return np.stack(
        [np.asarray(im)[..., 0] > 127 for im in ds.hf_dataset.with_format(None)[:][schema.mask_key(camera)]]
    )


def test_groundtruth_revision_reproduces_the_masks_recorded_live(recorded, unmasked, tmp_path):
    summary = add_masks(unmasked, "groundtruth", output=tmp_path / "gt")
    glam = provenance.read(tmp_path / "gt")
    step = glam["history"][-1]
    assert step["backend"] == "groundtruth" and step["objects"] == ["cube"] and step["task"] == "lift"
    assert glam["episode_seeds"] == [3]  # what the parent knew is kept
    for cam in schema.CAMERAS:
        live, rerendered = masks_of(recorded, cam), masks_of(tmp_path / "gt", cam)
        assert live.shape == rerendered.shape == (summary.frames, SIZE, SIZE)
        assert live.any(axis=(1, 2)).sum() > summary.frames // 2  # the cube is in view most of the time
        # qpos is stored as float32: a pixel on an edge may flip, nothing more
        assert min(mask_iou(a, b) for a, b in zip(live, rerendered, strict=True)) > 0.9
        assert summary.empty[cam] == int((~rerendered.any(axis=(1, 2))).sum())
    # the cube really is what is masked: its pixels are red in the camera frames
    from glam_lerobot.masks import episodes

    ds = episodes.open_dataset(tmp_path / "gt")
    frames = episodes.camera_frames(ds, 0, "front").astype(int)
    m = masks_of(tmp_path / "gt", "front")
    inside = frames[m]
    assert (inside[:, 0] > inside[:, 1] + 40).mean() > 0.8


def test_groundtruth_objects_can_be_chosen_and_unknown_ones_are_named(unmasked, tmp_path):
    with pytest.raises(ValueError, match="no object 'teapot'"):
        add_masks(unmasked, "groundtruth", objects=["teapot"], output=tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []  # refused before any work folder was made
    # any body of the scene can be masked, e.g. the gripper (with its fingers) instead of the cube
    grip = add_masks(unmasked, "groundtruth", objects=["arm0/gripper"], cameras=["front"], output=tmp_path / "grip")
    gripper, cube = masks_of(tmp_path / "grip", "front"), masks_of(unmasked.with_name("lift"), "front")
    assert grip.empty["front"] < grip.frames // 2
    assert np.mean([mask_iou(g, c) for g, c in zip(gripper, cube, strict=True)]) < 0.3


def test_score_renders_the_truth_when_the_dataset_has_no_mask_columns(unmasked, tmp_path):
    import torch
    from ultralytics import YOLO

    from glam_lerobot.masks.score import score_masks

    torch.manual_seed(0)
    weights = tmp_path / "tiny-seg.pt"
    YOLO("yolo11n-seg.yaml").save(weights)
    rows = score_masks(
        [unmasked], str(weights), objects=["0"], conf=1.0, tracker=None, cameras=["front"], panel=tmp_path / "p.png"
    )
    (row,) = rows
    assert row["truth"] == "rendered from sim.qpos" and row["task"] == "lift"
    # nothing predicted: IoU is 1 exactly on the frames where the cube is out of view
    assert row["pred_empty"] == row["frames"] and row["mean_iou"] == pytest.approx(row["true_empty"] / row["frames"])
    assert (tmp_path / "p.png").stat().st_size > 1000
