"""A user ingests HDF5 episode files in the ALOHA and robomimic layouts, written here with h5py."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest

from glam_lerobot import provenance, schema
from glam_lerobot.ingest import hdf5
from glam_lerobot.ingest.kinova_fk import forward_kinematics
from glam_lerobot.ingest.resample import resample_uniform
from glam_lerobot.rotations import matrix_to_6d, quat_to_6d
from glam_lerobot.writing import EpisodeError

HW = (32, 32)


def picture(k: int, shift: int = 0) -> np.ndarray:
    img = np.full((*HW, 3), 25 + (7 * k + shift) % 200, dtype=np.uint8)
    img[:, :6, 2] = 240
    return img


def aloha_arrays(T: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 50
    qpos = np.concatenate([0.2 * np.sin(t + np.arange(7)) + rng.normal(0, 0.01, (1, 7)), 0.04 + 0.0 * t], 1)
    action = qpos + 0.01
    return qpos, action


def write_aloha(path, T=60, seed=0, compress=False, qpos_width=8):
    """An episode file as ALOHA's record_episodes.py writes it (optionally JPEG rows + compress_len)."""
    qpos, action = aloha_arrays(T, seed)
    if qpos_width != 8:
        qpos = np.concatenate([qpos, np.zeros((T, qpos_width - 8))], 1)
        action = np.concatenate([action, np.zeros((T, qpos_width - 8))], 1)
    with h5py.File(path, "w", rdcc_nbytes=1024**2 * 2) as root:
        root.attrs["sim"] = False
        root.attrs["compress"] = compress
        obs = root.create_group("observations")
        images = obs.create_group("images")
        frames = {"cam_high": [picture(k, 0) for k in range(T)], "cam_low": [picture(k, 90) for k in range(T)]}
        if compress:
            encoded = {
                c: [cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].ravel() for f in fs]
                for c, fs in frames.items()
            }
            pad = max(len(e) for es in encoded.values() for e in es)
            for c, es in encoded.items():
                rows = np.zeros((T, pad), np.uint8)
                for i, e in enumerate(es):
                    rows[i, : len(e)] = e
                images.create_dataset(c, data=rows, chunks=(1, pad))
            root.create_dataset("compress_len", data=np.array([[len(e) for e in es] for es in encoded.values()]))
        else:
            for c, fs in frames.items():
                images.create_dataset(c, data=np.stack(fs), dtype="uint8", chunks=(1, *HW, 3))
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=np.zeros_like(qpos))
        root.create_dataset("action", data=action)
    return path


def robomimic_demo(T: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 20
    q = rng.normal(size=(1, 4)) + 0.05 * t
    return {
        "robot0_eef_pos": 0.4 + 0.01 * t * np.arange(1, 4),
        "robot0_eef_quat": q / np.linalg.norm(q, axis=1, keepdims=True),  # robosuite: (x, y, z, w)
        "robot0_gripper_qpos": np.concatenate([0.04 - 0.001 * t, -0.04 + 0.001 * t], 1),
        "robot0_joint_pos": 0.3 * np.sin(t + np.arange(7)),
        "agentview_image": np.stack([picture(k) for k in range(T)]),
        "robot0_eye_in_hand_image": np.stack([picture(k, 77) for k in range(T)]),
    }, np.concatenate([rng.normal(0, 0.1, (T, 6)), np.where(np.arange(T) > T // 2, 1.0, -1.0)[:, None]], 1)


def write_robomimic(path, lengths=(30, 24), joints=True, break_demo=None):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Kinova3"]}})
        for d, T in enumerate(lengths):
            obs, actions = robomimic_demo(T, d)
            if not joints:
                obs.pop("robot0_joint_pos")
            if break_demo == (d, "nan"):
                obs["robot0_eef_pos"][5, 0] = np.nan
            if break_demo == (d, "missing"):
                obs.pop("robot0_eef_quat")
            if break_demo == (d, "short"):
                actions = actions[:-3]
            g = data.create_group(f"demo_{d}")
            g.attrs["num_samples"] = T
            g.create_dataset("actions", data=actions)
            g.create_dataset("states", data=np.zeros((T, 10)))
            g.create_dataset("rewards", data=np.zeros(T))
            g.create_dataset("dones", data=np.zeros(T))
            for k, v in obs.items():
                g.create_dataset(f"obs/{k}", data=v)
        f.create_group("mask").create_dataset("train", data=np.array([b"demo_0"]))
    return path


def load(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root, video_backend="pyav")


def test_aloha_files_plain_and_jpeg_compressed(tmp_path):
    files = [write_aloha(tmp_path / "episode_0.hdf5", 60, 0), write_aloha(tmp_path / "episode_1.hdf5", 45, 1, True)]
    plan = hdf5.plan([tmp_path], fps=10, task="pick the cube")
    assert [j["layout"] for j in plan.jobs] == ["aloha", "aloha"] and not plan.bad
    plan.write(tmp_path / "ds", "lab/aloha")
    ds = load(tmp_path / "ds", "lab/aloha")
    assert set(ds.meta.camera_keys) == {schema.image_key("overhead"), schema.image_key("front")}
    row = 0
    for ep, (T, seed) in enumerate(((60, 0), (45, 1))):
        qpos, action = aloha_arrays(T, seed)
        idx = resample_uniform(T, 50, 10)
        assert len(idx) == int((T - 1) / 5) + 1
        for j, k in enumerate(idx):
            item = ds[row]
            assert int(item["episode_index"]) == ep and abs(float(item["timestamp"]) - j / 10) < 1e-6
            assert k == 5 * j  # 50 Hz -> 10 fps: every fifth step
            np.testing.assert_allclose(item[schema.STATE].numpy(), qpos[k], atol=1e-6)
            np.testing.assert_allclose(item[schema.ACTION].numpy(), action[k], atol=1e-6)
            pos, rot = forward_kinematics(qpos[k, :7], tcp_offset=0.145)
            np.testing.assert_allclose(item[schema.EE_POSE].numpy(), [*pos, *matrix_to_6d(rot), qpos[k, 7]], atol=1e-5)
            got = item[schema.image_key("overhead")].numpy().transpose(1, 2, 0) * 255
            assert np.abs(got - picture(k, 0)).mean() < 5  # (JPEG +) AV1
            row += 1
    meta = provenance.read(tmp_path / "ds")
    assert meta["source"]["format"] == "hdf5-aloha" and meta["task"] == "pick the cube"
    assert [f["sha256"] for f in meta["source"]["files"]] == [provenance.sha256(p) for p in files]
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "hdf5-aloha" in card and provenance.sha256(files[0]) in card  # provenance on the dataset card too


def test_robomimic_demos_keep_osc_deltas_out_of_action(tmp_path):
    src = write_robomimic(tmp_path / "image.hdf5")
    plan = hdf5.plan([src], fps=10, camera_map="agentview=front,robot0_eye_in_hand=overhead")
    assert [j["episode"] for j in plan.jobs] == ["demo_0", "demo_1"]
    plan.write(tmp_path / "ds", "lab/robomimic")
    ds = load(tmp_path / "ds", "lab/robomimic")
    assert ds[0]["task"] == "Lift"  # from env_args
    row = 0
    for d, T in enumerate((30, 24)):
        obs, actions = robomimic_demo(T, d)
        idx = resample_uniform(T, 20, 10)
        np.testing.assert_array_equal(idx, np.arange(0, T, 2)[: len(idx)])
        states = np.stack([ds[row + j][schema.STATE].numpy() for j in range(len(idx))])
        acts = np.stack([ds[row + j][schema.ACTION].numpy() for j in range(len(idx))])
        for j, k in enumerate(idx):
            item = ds[row + j]
            opening = obs["robot0_gripper_qpos"][k, 0] - obs["robot0_gripper_qpos"][k, 1]
            want = [*obs["robot0_eef_pos"][k], *quat_to_6d(obs["robot0_eef_quat"][k]), opening]
            np.testing.assert_allclose(item[schema.EE_POSE].numpy(), want, atol=1e-5)
            np.testing.assert_allclose(states[j], [*obs["robot0_joint_pos"][k], opening], atol=1e-6)
            assert acts[j, 7] == (actions[k, 6] + 1) / 2  # gripper command 0 open .. 1 closed
            got = item[schema.image_key("overhead")].numpy().transpose(1, 2, 0) * 255
            assert np.abs(got - picture(k, 77)).mean() < 4
        np.testing.assert_allclose(acts[:-1, :7], states[1:, :7], atol=1e-6)  # next joint state, not OSC deltas
        row += len(idx)
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == row


def test_robomimic_without_joints_is_auxiliary_and_broken_files_are_named(tmp_path):
    plan = hdf5.plan([write_robomimic(tmp_path / "eef_only.hdf5", joints=False)])
    assert schema.STATE not in plan.features and schema.ACTION not in plan.features
    assert plan.glam_meta["embodiment"] == "robomimic-eef"

    for broken, field, message in (
        ((1, "nan"), "data/demo_1/obs/robot0_eef_pos", "NaN"),
        ((1, "missing"), "data/demo_1/obs/robot0_eef_quat", "missing"),
        ((0, "short"), "data/demo_0/actions", "has 27 samples where the others have 30"),
    ):
        src = write_robomimic(tmp_path / f"{broken[1]}.hdf5", break_demo=broken)
        plan = hdf5.plan([src])
        assert [(j["episode"], j["bad"][0]) for j in plan.bad] == [(f"demo_{broken[0]}", field)]
        with pytest.raises(EpisodeError, match=message) as err:
            plan.write(tmp_path / "never", "lab/never")
        assert (err.value.file, err.value.episode, err.value.field) == (str(src), f"demo_{broken[0]}", field)
    assert not (tmp_path / "never").exists() and not (tmp_path / "never.partial").exists()

    good = write_aloha(tmp_path / "aloha" / "episode_0.hdf5", 40) if (tmp_path / "aloha").mkdir() is None else None
    wide = write_aloha(tmp_path / "aloha" / "episode_1.hdf5", 40, qpos_width=14)
    cut = tmp_path / "aloha" / "episode_2.hdf5"
    cut.write_bytes(good.read_bytes()[:3000])
    plan = hdf5.plan([tmp_path / "aloha"])
    assert {(j["file"], j["bad"][0]) for j in plan.bad} == {(str(wide), "/observations/qpos"), (str(cut), "<file>")}
    summary = plan.write(tmp_path / "ds", "lab/aloha_skip", skip_bad=True)
    assert summary.episodes == 1 and len(summary.bad) == 2
    assert any("expected (T, 8 * arms)" in b for b in summary.bad)
    assert any("not a readable HDF5 file" in b for b in summary.bad)
    assert load(tmp_path / "ds", "lab/aloha_skip").meta.total_episodes == 1


def test_a_robomimic_file_without_demos_says_so(tmp_path):
    import h5py

    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("data").attrs["env_args"] = "{}"
    with pytest.raises(EpisodeError, match=r"no readable episode: 1 file\(s\) opened, none holds an episode"):
        hdf5.plan([path], layout="robomimic")
