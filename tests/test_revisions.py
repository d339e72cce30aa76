"""A derived revision adds columns in a new folder and leaves its parent byte-identical."""

import hashlib

import numpy as np
import pytest

from glam_lerobot import provenance, schema, synthetic
from glam_lerobot.revisions import add_columns
from glam_lerobot.writing import write_dataset


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def write_parent(tmp_path):
    """A synthetic 2-episode Kinova dataset at tmp_path/kinova (6 frames each, 32 px): the parent revision."""
    parent = tmp_path / "kinova"
    summary = write_dataset(
        parent,
        "me/kinova",
        10,
        synthetic.features(image_size=32),
        [synthetic.job(i, length=6, image_size=32) for i in range(2)],
        synthetic.produce,
        glam_meta={"embodiment": "kinova", "task": "synthetic"},
    )
    return parent, summary


def test_latents_added_as_a_revision_load_with_stock_lerobot_and_parent_is_untouched(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    parent, summary = write_parent(tmp_path)
    before = _tree_digest(parent)
    latents = np.arange(summary.frames * 8, dtype=np.float32).reshape(-1, 8)
    is_pad = np.zeros((summary.frames, 1), np.float32)
    is_pad[[5, 11]] = 1.0  # each episode's last frame (validate refuses latents without their pads)
    masks = np.zeros((summary.frames, 32, 32, 3), np.uint8)
    masks[:, 4:12, 4:12] = 255
    child = add_columns(
        parent,
        {
            schema.LATENT: (latents, {"dtype": "float32", "shape": (8,), "names": None}),
            schema.LATENT_IS_PAD: (is_pad, {"dtype": "float32", "shape": (1,), "names": None}),
            **{k: (masks, ft) for k, ft in schema.mask_features((32, 32), ("front",)).items()},
        },
        revision="latents-v1",
        command="test",
        details={"world_model": "none"},
    )
    assert child.name == "kinova@latents-v1"
    assert _tree_digest(parent) == before
    ds = LeRobotDataset("me/kinova", root=child, video_backend="pyav")
    np.testing.assert_allclose(ds[7][schema.LATENT].numpy(), latents[7])
    mask = ds[3][schema.mask_key("front")].numpy()
    assert mask.shape[-2:] == (32, 32) and set(np.unique(mask)) <= {0.0, 1.0}
    assert ds.meta.stats[schema.LATENT]["max"][0] == latents[:, 0].max()
    assert ds.meta.stats[schema.mask_key("front")]["max"].ravel()[0] == pytest.approx(1.0)
    # LeRobot's own editing tools rebuild stats from per-episode stats: the new columns' stats survive them
    from lerobot.datasets.dataset_tools import delete_episodes

    trimmed = delete_episodes(ds, [0], output_dir=tmp_path / "trimmed", repo_id="me/kinova")
    assert trimmed.meta.stats[schema.LATENT]["min"][0] == latents[6:, 0].min() > 0
    assert schema.mask_key("front") in trimmed.meta.stats
    meta = provenance.read(child)
    assert meta["revision"] == "latents-v1" and meta["parent"]["root"] == str(parent)
    assert meta["history"][-1]["columns"] == sorted([schema.LATENT, schema.LATENT_IS_PAD, schema.mask_key("front")])
    assert meta["embodiment"] == "kinova"


def test_a_column_of_the_wrong_length_is_refused_before_anything_is_written(tmp_path):
    parent = tmp_path / "p"
    write_dataset(
        parent, "me/p", 10, synthetic.features(image_size=32), [synthetic.job(0, image_size=32)], synthetic.produce
    )
    with pytest.raises(ValueError, match="has 3 values for 12 frames"):
        add_columns(
            parent,
            {schema.LATENT: (np.zeros((3, 8), np.float32), {"dtype": "float32", "shape": (8,)})},
            revision="x",
            command="test",
        )
    assert not (tmp_path / "p@x").exists() and not (tmp_path / "p@x.partial").exists()


def test_a_revision_that_fails_validation_is_not_renamed_into_place(tmp_path):
    parent, summary = write_parent(tmp_path)
    latents = np.zeros((summary.frames, 4), np.float32)
    with pytest.raises(RuntimeError, match="latent.action without latent.is_pad"):
        add_columns(
            parent,
            {schema.LATENT: (latents, {"dtype": "float32", "shape": (4,), "names": None})},
            revision="bad",
            command="test",
        )
    assert not (tmp_path / "kinova@bad").exists()


def test_a_revision_holds_the_tables_lerobots_own_add_features_writes(tmp_path):
    """The revision's data files are written with pyarrow (LeRobot's add_features is 5x slower): same schema,
    same values, images as the same PNG bytes, and the parent's videos and metadata files copied unchanged."""
    import json

    import pyarrow.parquet as pq
    from lerobot.datasets.dataset_tools import add_features
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    parent, summary = write_parent(tmp_path)
    rng = np.random.default_rng(0)
    n = summary.frames
    masks = np.zeros((n, 32, 32, 3), np.uint8)
    masks[:, 3:9, 5:20] = 255
    columns = {
        "test.vector": (rng.normal(size=(n, 8)).astype(np.float32), {"dtype": "float32", "shape": (8,), "names": None}),
        "test.scalar": (rng.normal(size=(n, 1)).astype(np.float32), {"dtype": "float32", "shape": (1,), "names": None}),
        "test.count": (np.arange(n, dtype=np.int64)[:, None], {"dtype": "int64", "shape": (1,), "names": None}),
        **{k: (masks, ft) for k, ft in schema.mask_features((32, 32), ("front",)).items()},
    }
    ours = add_columns(parent, columns, revision="v1", command="test")
    theirs = tmp_path / "theirs"
    add_features(
        LeRobotDataset("me/kinova", root=parent, video_backend="pyav"), columns, output_dir=theirs, repo_id="me/kinova"
    )
    for path in sorted((theirs / "data").rglob("*.parquet")):
        a, b = pq.read_table(ours / path.relative_to(theirs)), pq.read_table(path)
        assert a.schema.equals(b.schema) and a.equals(b)
        # the features `datasets` reads back are the same (LeRobot's also carry a Dataset's random fingerprint)
        hf = [json.loads(t.schema.metadata[b"huggingface"])["info"] for t in (a, b)]
        assert hf[0] == hf[1] and hf[0]["features"]["mask.front"] == {"_type": "Image"}
    assert (
        json.loads((ours / "meta/info.json").read_text())["features"]
        == json.loads((theirs / "meta/info.json").read_text())["features"]
    )
    videos = sorted(p.relative_to(parent) for p in (parent / "videos").rglob("*.mp4"))
    assert videos and all((ours / v).read_bytes() == (parent / v).read_bytes() for v in videos)
