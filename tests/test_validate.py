"""`glam-lerobot validate`: a user checks a dataset before training on it.

A healthy recording gives no FAIL, even with --deep; copies broken on purpose the way real datasets break (a video
one frame short, NaN in the stats, a timestamp gap, NaN in a state, a mask blurred by a lossy codec) each give
a FAIL naming the check, the episode and the feature, and exit status 1.
"""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from glam_lerobot import schema
from glam_lerobot.validate import validate


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from glam_lerobot.sim.record import record

    root = tmp_path_factory.mktemp("validate") / "kinova"
    record("lift", "kinova", 2, 0, root, repo_id="test/validate-lift", image_size=32, masks=True, workers=1)
    return root


@pytest.fixture
def copy(recorded, tmp_path):
    def make(name: str):
        return shutil.copytree(recorded, tmp_path / name)

    return make


def cli(*args):
    from glam_lerobot.cli import app

    return CliRunner().invoke(app, ["validate", *map(str, args)])


def failures(report) -> set[tuple[str, int | None, str | None]]:
    return {(r.check, r.episode, r.feature) for r in report.failed}


def rewrite_data(root, change):
    """Apply `change(dict of numpy columns) -> None` to the dataset's (single) data parquet file."""
    path = next((root / "data").glob("chunk-*/file-*.parquet"))
    table = pq.read_table(path)
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    change(cols)
    pq.write_table(pa.table(cols, schema=table.schema), path)


def test_a_recorded_dataset_passes_every_check_even_deep(recorded):
    report = validate(recorded, deep=True)
    assert report.failed == [] and report.episodes == 2
    checks = {r.check for r in report.rows}
    assert {"timestamps", "finite", "stats", "video span", "masks", "video frames", "frozen"} <= checks
    res = cli(recorded, "--deep")
    assert res.exit_code == 0, res.output
    assert "0 failures" in res.output


def test_nan_in_the_stats_fails_and_names_the_feature(copy):
    root = copy("nan-stats")
    stats = json.loads((root / "meta" / "stats.json").read_text())
    stats[schema.ACTION]["mean"][0] = math.nan
    (root / "meta" / "stats.json").write_text(json.dumps(stats))
    assert failures(validate(root)) == {("stats", None, schema.ACTION)}
    res = cli(root, "--json")
    assert res.exit_code == 1
    rows = json.loads(res.output)["rows"]
    assert any(r["status"] == "FAIL" and r["feature"] == schema.ACTION and "NaN" in r["message"] for r in rows)


def test_a_timestamp_gap_fails_for_that_episode(copy):
    root = copy("gap")

    def late(cols):
        ep1 = [i for i, e in enumerate(cols["episode_index"]) if e == 1]
        for i in ep1[5:]:
            cols["timestamp"][i] += 0.3  # the recorder stalled for three frames after frame 5

    rewrite_data(root, late)
    report = validate(root)
    assert ("timestamps", 1, "timestamp") in failures(report)
    row = next(r for r in report.failed if r.check == "timestamps")
    assert "frame 4 -> 5" in row.message


def test_nan_in_a_state_fails_with_its_episode(copy):
    root = copy("nan-state")

    def poison(cols):
        last = max(i for i, e in enumerate(cols["episode_index"]) if e == 1)
        cols[schema.STATE][last] = [math.nan] * len(cols[schema.STATE][last])

    rewrite_data(root, poison)
    assert ("finite", 1, schema.STATE) in failures(validate(root))


def test_a_video_one_frame_short_is_found_by_deep_only(copy):
    import av

    root = copy("short-video")
    key = schema.image_key("front")
    path = next((root / "videos" / key).glob("chunk-*/file-*.mp4"))
    with av.open(str(path)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as dst:  # what a streaming encoder that lost its last frame leaves
        stream = dst.add_stream("mpeg4", rate=schema.DEFAULT_FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for img in frames[:-1]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    assert validate(root).failed == []  # meta/ still says the segment is whole: only decoding tells
    deep = validate(root, deep=True)
    assert failures(deep) == {("video frames", 1, key)}
    assert "decoded frames for" in deep.failed[0].message
    assert cli(root, "--deep").exit_code == 1


def test_a_mask_blurred_by_a_lossy_codec_fails(copy):
    from PIL import Image

    root = copy("grey-mask")
    key = schema.mask_key("overhead")

    def blur(cols):
        grey = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(grey, format="PNG")
        first = cols["episode_index"].index(1)
        cols[key][first] = {"bytes": grey.getvalue(), "path": None}

    rewrite_data(root, blur)
    assert failures(validate(root)) == {("masks", 1, key)}


def test_not_a_dataset_is_one_clear_line(tmp_path):
    res = cli(tmp_path / "nowhere")
    assert res.exit_code == 1 and "no such folder" in res.output
    (tmp_path / "empty").mkdir()
    res = cli(tmp_path / "empty")
    assert res.exit_code == 1 and "no meta/info.json" in res.output


def test_a_hub_dataset_is_pulled_and_checked_by_repo_id_and_revision(recorded, tmp_lerobot_home):
    from glam_lerobot import hub

    pushed = hub.push_dataset(recorded, "test-user/validate-lift")
    res = cli("test-user/validate-lift@main", "--problems")
    assert res.exit_code == 0, res.output
    assert "0 failures" in res.output and pushed.commit
    missing = cli("test-user/no-such-dataset")
    assert missing.exit_code == 1 and "not found" in missing.output
