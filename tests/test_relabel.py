"""Relabelling: a user trains a tiny world model, relabels the mixture, and gets new revisions + a merged dataset."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_executors import stand_in_slurm  # noqa: F401  (shared fixture)
from test_world_model import cli, frame_cache, mixture_file, train_args  # noqa: F401  (shared fixtures)

from glam_lerobot import provenance, schema


def tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def relabelled(mixture_file, tmp_path_factory):  # noqa: F811
    import os

    os.environ["GLAM_LEROBOT_CACHE"] = str(tmp_path_factory.getbasetemp() / "frame-cache")
    base = mixture_file.parent
    before = {name: tree_digest(base / name) for name in ("kinova", "umi")}
    work = tmp_path_factory.mktemp("relabel")
    cli(*train_args(mixture_file, work / "wm", 2))
    out = cli(
        "relabel",
        "--world-model",
        str(work / "wm"),
        "--mixture",
        str(mixture_file),
        "--output",
        str(work / "out"),
        "--revision",
        "latents-v1",
    )
    assert "transitions/s (inference alone" in out and "end to end" in out
    return {"base": base, "work": work, "out": work / "out", "before": before}


def test_parents_stay_byte_identical(relabelled):
    for name, digest in relabelled["before"].items():
        assert tree_digest(relabelled["base"] / name) == digest


def test_each_dataset_gets_a_new_revision_with_latents_and_explicit_episode_ends(relabelled):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot.world_model.frames import read_numeric

    root = relabelled["out"] / "datasets" / "kinova@latents-v1"
    ds = LeRobotDataset("test/kinova", root=root, video_backend="pyav")
    assert ds.meta.features[schema.LATENT]["shape"] == [8] or tuple(ds.meta.features[schema.LATENT]["shape"]) == (8,)
    assert schema.LATENT in ds.meta.stats  # stats exist for the new column
    num = read_numeric(root, [schema.LATENT, schema.LATENT_IS_PAD, "episode_index", "frame_index"])
    z, pad, ep = num[schema.LATENT], num[schema.LATENT_IS_PAD].reshape(-1), num["episode_index"].reshape(-1)
    last = np.flatnonzero(np.r_[ep[1:] != ep[:-1], True])
    assert (pad[last] == 1).all() and pad.sum() == len(last) == 4
    np.testing.assert_array_equal(z[last], z[last - 1])  # the last frame repeats the previous latent
    assert np.isfinite(z).all() and np.abs(z).sum() > 0

    # the stored latent is the IDM posterior mean of that transition (Eq. 7)
    import torch

    from glam_lerobot.world_model.checkpoint import load_world_model
    from glam_lerobot.world_model.data import gather_images, load_source

    model, _ = load_world_model(relabelled["work"] / "wm")
    src = load_source(relabelled["base"] / "kinova", "test/kinova", "target", None, "rgb", progress=False)
    rows = np.array([0, 5, 12])
    imgs = gather_images(src, np.r_[rows, rows + 1], model.config.cameras, "rgb", 32)
    ee = torch.from_numpy(src.ee_pose[np.r_[rows, rows + 1]])
    want = model.infer_latents(imgs[:3], ee[:3], imgs[3:], ee[3:]).numpy()
    np.testing.assert_allclose(z[rows], want, atol=1e-5)

    meta = provenance.read(root)
    step = meta["history"][-1]
    assert meta["revision"] == "latents-v1" and meta["parent"]["root"] == str(relabelled["base"] / "kinova")
    assert step["world_model"]["sha256"] == provenance.sha256(relabelled["work"] / "wm" / "model.safetensors")
    assert set(step["columns"]) == {schema.LATENT, schema.LATENT_IS_PAD}


def test_merged_mixture_dataset_loads_with_stock_lerobot(relabelled):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot.world_model.frames import read_numeric

    root = relabelled["out"] / "mixture"
    ds = LeRobotDataset("local/tiny-glam", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 7 and len(ds) == 4 * 10 + 3 * 9
    feats = ds.meta.features
    assert schema.image_key("overhead") in feats and schema.image_key("front") in feats
    assert schema.image_key("top") not in feats and schema.image_key("side") not in feats  # renamed by the mixture
    meta = provenance.read(root)
    assert [(s["index"], s["repo_id"], s["role"]) for s in meta["sources"]] == [
        (0, "test/kinova", "target"),
        (1, "test/umi", "auxiliary"),
    ]
    assert meta["horizon"] == 20 and meta["world_model"]["sha256"]

    cols = [
        schema.SOURCE,
        schema.ACTION_IS_REAL,
        schema.STATE,
        schema.ACTION,
        schema.LATENT,
        schema.LATENT_IS_PAD,
        schema.LATENT_CHUNK,
        schema.LATENT_CHUNK_IS_PAD,
        "episode_index",
    ]
    m = read_numeric(root, cols)
    source = m[schema.SOURCE].reshape(-1)
    real = m[schema.ACTION_IS_REAL].reshape(-1)
    assert (source[:40] == 0).all() and (source[40:] == 1).all()
    assert (real == (source == 0)).all()
    assert np.abs(m[schema.STATE][source == 1]).sum() == 0 and np.abs(m[schema.ACTION][source == 1]).sum() == 0
    assert np.abs(m[schema.ACTION][source == 0]).sum() > 0

    # latent chunk at frame t = latents t .. t+H-1 of the same episode; pad past the end and on the last frame
    z, chunk, cpad = m[schema.LATENT], m[schema.LATENT_CHUNK].reshape(-1, 20, 8), m[schema.LATENT_CHUNK_IS_PAD]
    umi = read_numeric(relabelled["out"] / "datasets" / "umi@latents-v1", [schema.LATENT])[schema.LATENT]
    np.testing.assert_allclose(z[40:], umi, atol=1e-6)  # the merged latents are the revision's latents
    t = 42  # umi episode 0, frame 2 (episode length 9: frames 2..8 are in the chunk, frame 8 is the last)
    np.testing.assert_allclose(chunk[t, :7], z[42:49], atol=1e-6)
    assert (chunk[t, 7:] == 0).all()
    np.testing.assert_array_equal(cpad[t], [0] * 6 + [1] * 14)
    assert (cpad[40 + 8] == 1).all()  # the last frame: nothing real ahead

    # cameras are stored as LeRobot image features (PNG per frame: a training sample decodes ~5x faster than from
    # AV1), holding the frames the source's video decodes to
    assert feats[schema.image_key("overhead")]["dtype"] == "image"
    umi_ds = LeRobotDataset("test/umi", root=relabelled["out"] / "datasets" / "umi@latents-v1", video_backend="pyav")
    np.testing.assert_allclose(ds[42][schema.image_key("overhead")], umi_ds[2][schema.image_key("top")], atol=2 / 255)

    item = ds[45]  # and through __getitem__, as lerobot-train reads it
    assert tuple(item[schema.LATENT_CHUNK].shape) == (160,) and tuple(item[schema.LATENT_CHUNK_IS_PAD].shape) == (20,)
    assert tuple(item[schema.image_key("overhead")].shape) == (3, 32, 32)


def test_the_action_chunk_column_is_what_lerobots_delta_query_returns(relabelled):
    """Policies read `chunk.action` instead of LeRobot's (slow) 20-step delta query: same values, same pads."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = relabelled["out"] / "mixture"
    ds = LeRobotDataset(
        "local/tiny-glam",
        root=root,
        video_backend="pyav",
        delta_timestamps={schema.ACTION: [i / 10 for i in range(20)]},
    )
    for i in (0, 5, 9, 12, 39, 40, 48, len(ds) - 1):  # episode starts, ends and the middle, both sources
        item = ds[i]
        np.testing.assert_allclose(item[schema.ACTION_CHUNK].reshape(20, -1), item[schema.ACTION], atol=1e-6)
        np.testing.assert_array_equal(item[schema.ACTION_CHUNK_IS_PAD].numpy() > 0.5, item["action_is_pad"].numpy())
    assert item[schema.ACTION_CHUNK_IS_PAD].sum() == 19  # the last frame: one real step, 19 pads


def test_latents_plot_colours_every_source(relabelled):
    png = relabelled["work"] / "latents.png"
    out = cli("latents", "plot", str(relabelled["out"] / "mixture"), "--output", str(png))
    assert png.stat().st_size > 1000 and "test/kinova: 36" in out and "test/umi: 24" in out


def test_latent_chunks_handle_short_episodes():
    from glam_lerobot.world_model.relabel import latent_chunks

    z = np.arange(5, dtype=np.float32)[:, None].repeat(2, 1)  # episodes: [0, 1, 2] and [3] and [4]
    pad = np.array([0, 0, 1, 1, 1], np.float32)
    ep = np.array([0, 0, 0, 1, 2])
    chunk, cpad = latent_chunks(z, pad, ep, horizon=3)
    np.testing.assert_array_equal(chunk.reshape(5, 3, 2)[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(cpad[0], [0, 0, 1])
    np.testing.assert_array_equal(cpad[1], [0, 1, 1])
    np.testing.assert_array_equal(cpad[3], [1, 1, 1])  # a one-frame episode has no transition at all


def test_relabel_refuses_to_overwrite(relabelled, mixture_file):  # noqa: F811
    from typer.testing import CliRunner

    from glam_lerobot.cli import app

    res = CliRunner().invoke(
        app,
        [
            "relabel",
            "--world-model",
            str(relabelled["work"] / "wm"),
            "--mixture",
            str(mixture_file),
            "--output",
            str(relabelled["out"]),
            "--revision",
            "latents-v1",
        ],
    )
    assert res.exit_code == 1 and "already exists" in res.output


def test_relabelled_revisions_and_the_merged_mixture_pass_validate(relabelled):
    """The merged mixture is LeRobot's aggregate of one shard per source: its stats.json must still cover the
    re-numbered episode_index and index (aggregate_datasets keeps each shard's own ranges; fixed after merge)."""
    from glam_lerobot.validate import validate

    roots = [relabelled["out"] / "mixture", *sorted((relabelled["out"] / "datasets").iterdir())]
    for root in roots:
        report = validate(root, deep=True)
        assert report.failed == [], (root, report.first_failures())
        assert "latents" in {r.check for r in report.rows}
    merged = validate(relabelled["out"] / "mixture")
    assert "mixture" in {r.check for r in merged.rows} and merged.episodes == 7  # 3 Kinova + 4 UMI


@pytest.mark.parametrize("kind", ["local", "slurm"])
def test_relabel_as_datatrove_tasks_labels_every_frame_as_one_process_does(
    relabelled,
    mixture_file,  # noqa: F811
    kind,
    request,
):
    """Inference cut into 3 tasks by episode (each loads the world model once), the rest after them (on Slurm a
    dependent job): the same latents, episode ends and merged chunks as the one-process relabel."""
    from glam_lerobot.executors import Executor
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model.frames import read_numeric
    from glam_lerobot.world_model.relabel import relabel

    if kind == "slurm":
        request.getfixturevalue("stand_in_slurm")  # sbatch & co. that run the jobs at once, on this machine
    out = relabelled["work"] / f"tasks-{kind}"
    summary = relabel(
        relabelled["work"] / "wm",
        load_mixture(mixture_file),
        out,
        revision="latents-v1",
        executor=Executor(kind=kind, tasks=3, partition="gpu" if kind == "slurm" else None),
        progress=False,
    )
    assert summary.tasks == 3 and not (out / ".relabel").exists()
    assert bool(summary.submitted) == (kind == "slurm")
    one = relabelled["out"]
    for name in ("datasets/kinova@latents-v1", "datasets/umi@latents-v1", "mixture"):
        keys = [schema.LATENT, schema.LATENT_IS_PAD] + ([schema.LATENT_CHUNK] if name == "mixture" else [])
        a, b = read_numeric(out / name, keys), read_numeric(one / name, keys)
        np.testing.assert_array_equal(a[schema.LATENT_IS_PAD], b[schema.LATENT_IS_PAD])
        for key in keys:  # batches are cut elsewhere: equal to float rounding
            np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=f"{name}: {key}")
        assert np.abs(b[schema.LATENT]).max() > 0.01  # latents, not zeros compared with zeros
