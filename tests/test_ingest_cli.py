"""The `glam-lerobot ingest` commands as a user types them."""

from __future__ import annotations

from test_ingest_hdf5 import write_robomimic
from test_ingest_umi import write_buffer
from typer.testing import CliRunner

from glam_lerobot import provenance
from glam_lerobot.cli import app


def test_ingest_commands_write_a_dataset_or_name_the_bad_input(tmp_path):
    runner = CliRunner()
    src = write_robomimic(tmp_path / "lift.hdf5", lengths=(12, 10))
    out = runner.invoke(app, ["ingest", "hdf5", str(src), "--root", str(tmp_path / "ds"), "--repo-id", "lab/lift"])
    assert out.exit_code == 0, out.output
    assert "wrote 2 episodes, 11 frames" in out.output and "meta/glam.json" in out.output
    meta = provenance.read(tmp_path / "ds")
    assert meta["source"]["command"].startswith("glam-lerobot") and meta["source"]["format"] == "hdf5-robomimic"

    bad = write_buffer(tmp_path / "nan.zarr.zip", robots=1, corrupt="nan")
    out = runner.invoke(app, ["ingest", "umi", str(bad), "--root", str(tmp_path / "umi")])
    assert out.exit_code == 1
    assert "nan.zarr.zip: episode 1: field 'data/robot0_eef_pos'" in out.output.replace("\n", "")
    assert not (tmp_path / "umi").exists()

    out = runner.invoke(
        app, ["ingest", "umi", str(bad), "--root", str(tmp_path / "umi"), "--camera-map", "camera0=top"]
    )
    assert out.exit_code == 1 and "must be one of" in out.output

    out = runner.invoke(app, ["ingest", "rosbag", str(tmp_path / "nothing_here"), "--root", str(tmp_path / "r")])
    assert out.exit_code == 1 and "nothing_here" in out.output
