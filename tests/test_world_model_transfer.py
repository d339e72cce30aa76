"""Transfer: episodes of a simulated source (UMI or Kinova) are encoded by the IDM, decoded into Kinova actions and
replayed open-loop on the simulated Kinova from the same seed. Datasets are recorded with `sim record` (32 px)."""

from __future__ import annotations

import json

import numpy as np
from test_world_model import cli, frame_cache, train_args  # noqa: F401  (shared fixtures)
from typer.testing import CliRunner


def test_transfer_reports_success_and_object_error_per_source_with_strips(sim_mixture, tmp_path):
    base = sim_mixture.parent
    cli(*train_args(sim_mixture, tmp_path / "wm", 2))
    out = cli(
        "transfer",
        "--world-model",
        str(tmp_path / "wm"),
        "--root",
        str(base / "umi"),
        "--root",
        str(base / "kinova"),
        "--episodes",
        "1",
        "--output",
        str(tmp_path / "transfer"),
    )
    assert "test/umi-lift (umi): success" in out and "test/kinova-lift (kinova): success" in out
    report = json.loads((tmp_path / "transfer" / "transfer.json").read_text())
    assert set(report["per_source"]) == {"test/umi-lift", "test/kinova-lift"}
    for row in report["episodes"]:
        assert row["episode"] == 1 and isinstance(row["success"], bool)
        assert np.isfinite(row["object_error_mean"]) and row["object_error_final"] >= 0
        assert np.isfinite(row["ee_error_mean"]) and row["ee_error_if_still"] > 0  # the original gripper moved
        assert (tmp_path / "transfer").joinpath(row["png"].split("/")[-1]).stat().st_size > 1000
    assert report["world_model"]["sha256"]


def test_transfer_needs_simulated_episodes_with_seeds(sim_mixture, tmp_path):
    from glam_lerobot import provenance
    from glam_lerobot.cli import app

    base = sim_mixture.parent
    cli(*train_args(sim_mixture, tmp_path / "wm", 1))
    res = CliRunner().invoke(
        app,
        [
            "transfer",
            "--world-model",
            str(tmp_path / "wm"),
            "--root",
            str(base / "umi"),
            "--episodes",
            "7",
            "--output",
            str(tmp_path / "t"),
        ],
    )
    assert res.exit_code == 1 and "episode(s) [7]" in res.output
    meta = provenance.read(base / "kinova")
    assert len(meta["episode_seeds"]) == 2
