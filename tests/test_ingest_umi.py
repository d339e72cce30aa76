"""A user ingests UMI replay buffers (dataset.zarr.zip, written here with zarr + imagecodecs' JpegXL as UMI does)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from imagecodecs.numcodecs import Jpegxl, register_codecs

from glam_lerobot import provenance, schema
from glam_lerobot.ingest import umi
from glam_lerobot.ingest.resample import resample_uniform
from glam_lerobot.rotations import rotvec_to_6d
from glam_lerobot.writing import EpisodeError

HW = (32, 32)
ENDS = [61, 104]  # two episodes: 61 and 43 frames at 59.94 fps


def frame_image(k: int, cam: int) -> np.ndarray:
    """A picture that says which frame it is, even after AV1: a flat level per frame plus a camera stripe."""
    img = np.full((*HW, 3), 20 + (k * 3) % 200, dtype=np.uint8)
    img[:, : 8 * (cam + 1), 1] = 240
    return img


def lowdim(n: int, robot: int) -> dict[str, np.ndarray]:
    t = np.arange(n)[:, None]
    pos = np.concatenate([0.3 + 0.001 * t, -0.2 + 0.1 * robot + 0.0005 * t, 0.1 + 0 * t], 1).astype(np.float32)
    rot = np.concatenate([0.2 + 0.01 * t, -0.3 + 0 * t, 1.0 + 0.002 * t], 1).astype(np.float32)  # axis-angle
    width = (0.08 - 0.0005 * t).astype(np.float32)
    return {"eef_pos": pos, "eef_rot_axis_angle": rot, "gripper_width": width}


def write_buffer(path, robots=2, ends=ENDS, corrupt=None):
    """A UMI ReplayBuffer the way 07_generate_replay_buffer.py saves it (zarr v2 ZipStore, JpegXl level 99)."""
    register_codecs(verbose=False)
    n = ends[-1]
    store = zarr.ZipStore(str(path), mode="w") if str(path).endswith(".zip") else zarr.DirectoryStore(str(path))
    root = zarr.group(store)
    data, meta = root.create_group("data"), root.create_group("meta")
    for r in range(robots):
        values = lowdim(n, r)
        if corrupt == "nan":
            values["eef_pos"][ends[0] + 5, 1] = np.nan
        for name, arr in values.items():
            data.array(f"robot{r}_{name}", arr, chunks=arr.shape, compressor=None)
        start = np.repeat(np.zeros((1, 6)), n, 0)
        data.array(f"robot{r}_demo_start_pose", start, compressor=None)
        cam = np.stack([frame_image(k, r) for k in range(n)])
        data.array(f"camera{r}_rgb", cam, chunks=(1, *HW, 3), compressor=Jpegxl(level=99, numthreads=1))
    meta.array("episode_ends", np.asarray(ends, dtype=np.int64), compressor=None)
    if hasattr(store, "close"):
        store.close()
    return path


def test_bimanual_buffer_round_trips_into_a_lerobot_dataset(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    src = write_buffer(tmp_path / "dataset.zarr.zip")
    plan = umi.plan([src], fps=10, camera_map="camera0=front,camera1=overhead", task="cup in the wild")
    assert len(plan.jobs) == 2 and not plan.bad
    summary = plan.write(tmp_path / "umi_ds", "lab/umi_cups", workers=2)
    assert summary.episodes == 2

    ds = LeRobotDataset("lab/umi_cups", root=tmp_path / "umi_ds", video_backend="pyav")
    assert schema.STATE not in ds.features and schema.ACTION not in ds.features  # UMI has no robot
    assert ds.features[schema.EE_POSE]["shape"] == (20,)
    starts = [0, ENDS[0]]
    expected_lengths = [len(resample_uniform(b - a, umi.UMI_FPS, 10)) for a, b in zip(starts, ENDS, strict=True)]
    assert expected_lengths == [11, 8]  # 1.0 s and 0.70 s of recording at 10 fps
    assert ds.meta.total_frames == sum(expected_lengths)

    for ep, (a, b) in enumerate(zip(starts, ENDS, strict=True)):
        picked = a + resample_uniform(b - a, umi.UMI_FPS, 10)
        rows = [i for i in range(len(ds.hf_dataset)) if int(ds.hf_dataset[i]["episode_index"]) == ep]
        assert len(rows) == len(picked)
        for j, (row, k) in enumerate(zip(rows, picked, strict=True)):
            item = ds[row]
            assert abs(float(item["timestamp"]) - j / 10) < 1e-6
            assert abs((k - a) / umi.UMI_FPS - j / 10) <= 0.5 / umi.UMI_FPS + 1e-9  # nearest recorded frame
            pose = item[schema.EE_POSE].numpy()
            for r in range(2):
                raw = {n: v[k] for n, v in lowdim(ENDS[-1], r).items()}
                arm = pose[10 * r : 10 * r + 10]
                np.testing.assert_allclose(arm[:3], raw["eef_pos"], atol=1e-6)
                np.testing.assert_allclose(arm[3:9], rotvec_to_6d(raw["eef_rot_axis_angle"]), atol=1e-6)
                np.testing.assert_allclose(arm[9], raw["gripper_width"][0], atol=1e-7)
            for cam, name in ((0, "front"), (1, "overhead")):
                got = (item[schema.image_key(name)].numpy().transpose(1, 2, 0) * 255).astype(np.float32)
                want = frame_image(k, cam).astype(np.float32)
                assert np.abs(got - want).mean() < 4, (ep, j, name)  # AV1 tolerance; frames differ by >= 3 levels

    meta = provenance.read(tmp_path / "umi_ds")
    assert meta["embodiment"] == "umi" and meta["arms"] == 2
    assert meta["source"]["format"] == "umi-replay-buffer"
    assert meta["source"]["files"][0]["sha256"] == provenance.sha256(src)
    assert meta["source"]["mapping"]["camera_map"] == {"camera0": "front", "camera1": "overhead"}


def test_nan_pose_names_file_episode_field_and_skip_bad_drops_it(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    src = write_buffer(tmp_path / "nan.zarr.zip", robots=1, corrupt="nan")
    plan = umi.plan([src], fps=10)
    with pytest.raises(EpisodeError) as err:
        plan.write(tmp_path / "out", "lab/nan")
    assert (err.value.file, err.value.episode, err.value.field) == (str(src), 1, "data/robot0_eef_pos")
    assert "NaN" in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()  # stopped before writing

    summary = plan.write(tmp_path / "out", "lab/nan", skip_bad=True)
    assert summary.episodes == 1 and len(summary.bad) == 1 and "robot0_eef_pos" in summary.bad[0]
    ds = LeRobotDataset("lab/nan", root=tmp_path / "out", video_backend="pyav")
    assert ds.meta.total_episodes == 1 and list(ds.features[schema.image_key("front")]["shape"]) == [*HW, 3]


def test_truncated_zip_and_missing_chunks_are_named(tmp_path):
    src = write_buffer(tmp_path / "whole.zarr.zip", robots=1)
    cut = tmp_path / "cut.zarr.zip"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(EpisodeError, match="cut.zarr.zip.*not a readable zarr") as err:
        umi.plan([cut])
    assert err.value.file == str(cut)

    # a directory buffer that lost frames of episode 1: zarr would hand back zeros, ingest refuses
    holey = write_buffer(tmp_path / "holey.zarr", robots=1)
    (holey / "data" / "camera0_rgb" / f"{ENDS[0] + 3}.0.0.0").unlink()
    plan = umi.plan([holey])
    assert [(j["episode"], j["bad"][0]) for j in plan.bad] == [(1, "data/camera0_rgb")]
    with pytest.raises(EpisodeError, match="missing: truncated buffer"):
        plan.write(tmp_path / "out", "lab/holey")


def test_episode_ends_must_cover_the_data_and_camera_map_is_checked(tmp_path):
    src = write_buffer(tmp_path / "bad_ends.zarr.zip", robots=1, ends=[61, 104])
    bad = write_buffer(tmp_path / "ends.zarr", robots=1, ends=[61, 104])
    zarr.open_group(str(bad), mode="a")["meta"]["episode_ends"][:] = [61, 100]
    with pytest.raises(EpisodeError, match="meta/episode_ends"):
        umi.plan([bad])
    with pytest.raises(ValueError, match="must be one of"):
        umi.plan([src], camera_map="camera0=wrist")
    with pytest.raises(EpisodeError, match="maps none"):
        umi.plan([src], camera_map="camera7=front")


def test_damage_in_frames_the_fps_grid_skips_is_reported_with_check_all_frames(tmp_path):
    src = write_buffer(tmp_path / "buf.zarr", robots=1)
    used = set(resample_uniform(ENDS[0], umi.UMI_FPS, 10).tolist())
    skipped = min(set(range(ENDS[0])) - used)
    (src / "data" / "camera0_rgb" / f"{skipped}.0.0.0").write_bytes(b"\xff\x0a not a JpegXL codestream")

    quiet = umi.plan([src]).write(tmp_path / "quiet", "lab/quiet")  # the default decodes the frames it uses only
    assert quiet.episodes == 2 and quiet.warnings == []
    unchecked = ENDS[-1] - sum(
        len(resample_uniform(b - a, umi.UMI_FPS, 10)) for a, b in zip([0, *ENDS[:-1]], ENDS, strict=True)
    )
    assert f"note: {unchecked} of the buffers' {ENDS[-1]} camera frames" in "\n".join(quiet.lines())
    assert "--check-all-frames" in quiet.lines()[-1]  # said, never silent

    checked = umi.plan([src], check_all_frames=True).write(tmp_path / "checked", "lab/checked")
    assert checked.episodes == 2 and checked.notes == []  # reported, not failed
    assert len(checked.warnings) == 1 and "episode 0" in checked.warnings[0]
    assert "data/camera0_rgb: 1 of the" in checked.warnings[0] and f"source frame {skipped} (" in checked.warnings[0]
    assert provenance.read(tmp_path / "checked")["write"]["warnings"] == checked.warnings

    used_frame = min(used - {0})  # damage in a frame the dataset uses stays an error
    (src / "data" / "camera0_rgb" / f"{used_frame}.0.0.0").write_bytes(b"\xff\x0a broken")
    with pytest.raises(EpisodeError, match="episode 0: field 'data/camera0_rgb': cannot decode"):
        umi.plan([src], check_all_frames=True).write(tmp_path / "broken", "lab/broken")
