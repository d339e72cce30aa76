"""`masks add` / `masks score` with an ultralytics model on a real (tiny) LeRobot dataset.

No weights can be downloaded here, so the model is a YOLO-seg built from its YAML config (random weights, saved
once so every run uses the same ones). What is checked is the plumbing: mask shapes and values, ultralytics'
tracker over batches, empty-frame counting, resume after an interruption, the revision's stats and provenance,
LeRobot's own tools on the revision, and a parent that stays byte-identical.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from glam_lerobot import provenance, schema, synthetic
from glam_lerobot.masks import add_masks, columns
from glam_lerobot.masks.add import work_dir
from glam_lerobot.writing import write_dataset

SIZE = 32


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("masks") / "syn"
    jobs = [synthetic.job(i, length=6 + i, image_size=SIZE) for i in range(2)]
    write_dataset(
        root,
        "me/syn",
        10,
        synthetic.features(SIZE),
        jobs,
        synthetic.produce,
        glam_meta={"embodiment": "synthetic", "task": "lift", "repo_id": "me/syn"},
    )
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny-seg.pt"
    YOLO("yolo11n-seg.yaml").save(path)  # untrained: its class names are "0".."79"
    return str(path)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stored(ds, camera: str) -> np.ndarray:
    """All frames of a mask column as raw (N, H, W, 3) uint8, as LeRobot stored them."""
    return np.stack([np.asarray(im) for im in ds.hf_dataset.with_format(None)[:][schema.mask_key(camera)]])


def test_masks_become_a_new_revision_and_the_parent_stays_byte_identical(parent, model, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    before = tree_digest(parent)
    out = tmp_path / "syn@masks"
    # conf=0 makes the untrained model detect something; ByteTrack runs over batches of 4 frames
    summary = add_masks(
        parent, "ultralytics", model=model, objects=["0"], conf=0.0, batch=4, output=out, revision="masks-test"
    )
    assert summary.root == out and not work_dir(out).exists()
    assert tree_digest(parent) == before

    ds = LeRobotDataset("me/syn", root=out, video_backend="pyav")
    assert ds.meta.total_frames == summary.frames == 6 + 7
    for cam in schema.CAMERAS:
        key = schema.mask_key(cam)
        assert ds.meta.features[key]["dtype"] == "image" and tuple(ds.meta.features[key]["shape"]) == (SIZE, SIZE, 3)
        raw = stored(ds, cam)
        assert raw.shape == (13, SIZE, SIZE, 3) and raw.dtype == np.uint8
        assert set(np.unique(raw)) <= {0, 255}
        assert (raw == raw[..., :1]).all()  # three identical channels
        assert summary.empty[cam] == int((raw.reshape(13, -1).max(1) == 0).sum())
        assert np.asarray(ds.meta.stats[key]["mean"]).shape == (3, 1, 1)
        np.testing.assert_allclose(np.asarray(ds.meta.stats[key]["max"]).ravel(), [raw.max() / 255] * 3)
        assert ds[0][key].shape == (3, SIZE, SIZE)  # what a training loop gets
        # the camera videos were copied, not re-encoded
        vid = ds.meta.get_video_file_path(0, schema.image_key(cam))
        assert (out / vid).read_bytes() == (parent / vid).read_bytes()

    glam = provenance.read(out)
    step = glam["history"][-1]
    assert glam["revision"] == "masks-test" and glam["parent"]["root"] == str(parent)
    assert step["backend"] == "ultralytics" and step["model"] == model and step["objects"] == ["0"]
    assert step["tracker"] == "bytetrack.yaml"
    assert step["empty_frames"] == summary.empty
    assert sorted(step["columns"]) == sorted(schema.mask_key(c) for c in schema.CAMERAS)
    card = (out / "README.md").read_text()
    assert "`mask.front`" in card and Path(model).name in card


def test_frames_where_nothing_is_found_get_empty_masks_and_are_counted(parent, model, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    summary = add_masks(
        parent,
        "ultralytics",
        model=model,
        objects=["0"],
        conf=1.0,
        tracker=None,
        output=tmp_path / "none",
        cameras=["front"],
    )
    assert summary.empty == {"front": 13}
    ds = LeRobotDataset("me/syn", root=tmp_path / "none", video_backend="pyav")
    assert schema.mask_key("overhead") not in ds.meta.features
    assert stored(ds, "front").max() == 0
    assert "13/13" in "\n".join(summary.lines())


def test_an_interrupted_run_resumes_from_its_per_episode_cache(parent, model, tmp_path):
    out = tmp_path / "resumed"
    kw = dict(model=model, objects=["0"], conf=0.0, tracker=None, output=out, cameras=["overhead"])
    with pytest.raises(KeyboardInterrupt):
        add_masks(parent, "ultralytics", max_episodes=1, **kw)
    cached = sorted(p.name for p in work_dir(out).glob("episode-*.npz"))
    assert cached == ["episode-000000.npz"] and not out.exists()
    with np.load(work_dir(out) / cached[0]) as z:
        first = columns.unpack(z["overhead"], SIZE)

    # another run with different settings must not mix its masks into this work folder
    with pytest.raises(FileExistsError, match="different run"):
        add_masks(parent, "ultralytics", **{**kw, "conf": 0.5})

    summary = add_masks(parent, "ultralytics", **kw)
    assert summary.resumed == 1 and out.exists() and not work_dir(out).exists()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("me/syn", root=out, video_backend="pyav")
    np.testing.assert_array_equal(stored(ds, "overhead")[:6, ..., 0] > 0, first)


def test_bad_requests_are_refused_before_anything_is_written(parent, model, tmp_path):
    with pytest.raises(ValueError, match=r"syn.*no 'sim.qpos' column"):
        add_masks(parent, "groundtruth", output=tmp_path / "gt")
    with pytest.raises(ValueError, match="does not know \\['cube'\\]"):
        add_masks(parent, "ultralytics", model=model, output=tmp_path / "cube")  # default object of 'lift'
    with pytest.raises(ValueError, match="no camera \\['wrist'\\]"):
        add_masks(parent, "ultralytics", model=model, objects=["0"], cameras=["wrist"], output=tmp_path / "w")
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken"):
        add_masks(parent, "ultralytics", model=model, objects=["0"], output=tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_lerobot_tools_and_scoring_work_on_a_mask_revision(parent, model, tmp_path):
    from lerobot.datasets.dataset_tools import delete_episodes, recompute_stats
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot.masks.score import score_masks

    out = tmp_path / "rev"
    add_masks(parent, "ultralytics", model=model, objects=["0"], conf=0.0, tracker=None, output=out)
    ds = LeRobotDataset("me/syn", root=out, video_backend="pyav")
    recompute_stats(ds)  # must not crash on image columns added after recording
    assert np.asarray(ds.meta.stats[schema.mask_key("front")]["mean"]).shape == (3, 1, 1)
    kept = delete_episodes(ds, [0], output_dir=tmp_path / "kept", repo_id="me/kept")
    assert kept.meta.total_frames == 7 and set(np.unique(stored(kept, "front"))) <= {0, 255}

    # the model scored against masks it made itself, with the same settings, agrees everywhere
    rows = score_masks([out], model, objects=["0"], conf=0.0, tracker=None, panel=tmp_path / "panel.png")
    assert [(r["camera"], r["frames"], r["mean_iou"]) for r in rows] == [("overhead", 13, 1.0), ("front", 13, 1.0)]
    assert rows[0]["truth"] == "mask columns"
    assert (tmp_path / "panel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a stricter threshold finds less than the truth
    strict = score_masks([out], model, objects=["0"], conf=1.0, tracker=None, cameras=["front"], panel=None)
    truth_empty = strict[0]["true_empty"]
    assert strict[0]["pred_empty"] == 13 and strict[0]["mean_iou"] == pytest.approx(truth_empty / 13)


def test_cli_adds_masks_and_explains_itself(parent, model, tmp_path):
    from typer.testing import CliRunner

    from glam_lerobot.cli import app

    runner = CliRunner()
    helped = runner.invoke(app, ["masks", "add", "--help"])
    assert helped.exit_code == 0 and "new revision" in helped.output.lower()
    missing = runner.invoke(app, ["masks", "add", "--root", str(tmp_path / "nothing"), "--backend", "groundtruth"])
    assert missing.exit_code == 1 and "not a LeRobot dataset" in missing.output
    res = runner.invoke(
        app,
        [
            "masks",
            "add",
            "--root",
            str(parent),
            "--backend",
            "ultralytics",
            "--model",
            model,
            "--objects",
            "0",
            "--conf",
            "1.0",
            "--tracker",
            "none",
            "--cameras",
            "front",
            "--revision",
            "masks-cli",
        ],
    )
    assert res.exit_code == 0, res.output
    out = parent.with_name("syn@masks-cli")
    try:
        assert "masks-cli" in res.output and "front 13/13" in res.output
        assert json.loads((out / "meta" / "glam.json").read_text())["history"][-1]["command"].startswith(
            "glam-lerobot masks add"
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)  # beside the module's parent: do not leave it to other tests


def test_a_score_panel_without_samples_is_still_written(tmp_path):
    from glam_lerobot.masks.score import write_panel

    assert write_panel([], tmp_path / "panel.png").stat().st_size > 0  # one empty row, not a zip() length error


def test_masks_as_datatrove_tasks_are_the_masks_one_process_writes(parent, model, tmp_path):
    """Two tasks, each with its own model, mask one episode each; the revision is the one-process revision."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot.executors import Executor

    kw = dict(model=model, objects=["0"], conf=0.0, tracker=None, cameras=["overhead", "front"])
    one = add_masks(parent, "ultralytics", output=tmp_path / "one", **kw)
    tasks = add_masks(parent, "ultralytics", output=tmp_path / "tasks", executor=Executor(tasks=2), **kw)
    assert (tasks.episodes, tasks.frames, tasks.empty) == (one.episodes, one.frames, one.empty)
    assert not work_dir(tmp_path / "tasks").exists()
    a = LeRobotDataset("me/syn", root=tmp_path / "one", video_backend="pyav")
    b = LeRobotDataset("me/syn", root=tmp_path / "tasks", video_backend="pyav")
    for camera in ("overhead", "front"):
        assert stored(a, camera).any()  # masks, not empty frames compared with empty frames
        np.testing.assert_array_equal(stored(a, camera), stored(b, camera))
