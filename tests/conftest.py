"""Shared test set-up: a Hub-compatible server on loopback and a throw-away Hugging Face home for the session.

huggingface_hub, datasets and LeRobot read HF_ENDPOINT, HF_HOME and HF_LEROBOT_HOME once, at import time, so
`pytest_configure` sets them before any test module is imported:

  HF_ENDPOINT         the server from tests/hubserver.py (a bare git repo per Hub repo, LFS objects by sha256)
  HF_HUB_DISABLE_XET  huggingface_hub >= 1.0 uploads only through Xet otherwise, which the server does not speak
  HF_TOKEN            a dummy token; the server enforces it (a wrong token gets 401, as on the Hub)
  HF_HOME, HF_LEROBOT_HOME   a temp dir, so no test reads or writes the user's cache

Fixtures: `hub` (the endpoint URL), `hub_server` (the HubProcess: root, token), `tmp_lerobot_home` (a fresh
HF_LEROBOT_HOME for one test, patched into LeRobot's import-time constants too).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubserver  # noqa: E402  (stdlib only: safe before the env is set)

TEST_TOKEN = "hf_glam_lerobot_test_token"
_state: dict = {}


def pytest_configure(config):
    for mod in ("huggingface_hub", "datasets", "lerobot"):
        assert mod not in sys.modules, f"{mod} was imported before tests/conftest.py could point it at the test Hub"
    work = Path(tempfile.mkdtemp(prefix="glam-tests-"))
    server = hubserver.start(str(work / "hub"), token=TEST_TOKEN)
    _state.update(work=work, server=server)
    os.environ.setdefault("MUJOCO_GL", "egl")  # for tests that import mujoco before glam_lerobot
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("LEROBOT_HOME", None)  # LeRobot refuses to import with the old variable set
    os.environ.update(
        HF_ENDPOINT=server.url,
        HF_HUB_DISABLE_XET="1",
        HF_TOKEN=TEST_TOKEN,
        HF_HOME=str(work / "hf_home"),
        HF_LEROBOT_HOME=str(work / "lerobot_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )


def pytest_unconfigure(config):
    server = _state.pop("server", None)
    if server is not None:
        server.stop()
    work = _state.pop("work", None)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_server() -> hubserver.HubProcess:
    """The session's Hub server process (`.url`, `.root`, `.token`)."""
    return _state["server"]


@pytest.fixture(scope="session")
def hub(hub_server) -> str:
    """The endpoint URL every huggingface_hub / LeRobot call in the tests talks to."""
    from glam_lerobot import hub_endpoint

    hub_endpoint.install()  # huggingface_hub < 2 posts card validation to a hard-coded huggingface.co
    return hub_server.url


@pytest.fixture
def tmp_lerobot_home(tmp_path, monkeypatch):
    """A fresh, empty HF_LEROBOT_HOME (and its hub/ cache) for one test."""
    import lerobot.utils.constants as constants  # imported now, with the session's home, so it can be restored

    session_home, session_cache = constants.HF_LEROBOT_HOME, constants.HF_LEROBOT_HUB_CACHE
    home = tmp_path / "lerobot_home"
    home.mkdir()
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))

    def point_lerobot_at(new_home: Path, new_cache: Path, old_home: Path) -> None:
        # LeRobot modules copy these constants at import (`from ...constants import HF_LEROBOT_HOME`)
        for name, mod in list(sys.modules.items()):
            if (name == "lerobot" or name.startswith("lerobot.")) and getattr(mod, "HF_LEROBOT_HOME", None) == old_home:
                mod.HF_LEROBOT_HOME = new_home
                if hasattr(mod, "HF_LEROBOT_HUB_CACHE"):
                    mod.HF_LEROBOT_HUB_CACHE = new_cache

    point_lerobot_at(home, home / "hub", session_home)
    yield home
    point_lerobot_at(session_home, session_cache, home)  # also modules first imported during the test


def write_tiny_dataset(
    root: Path,
    repo_id: str = "test-user/tiny",
    *,
    robot: bool = True,
    cameras: tuple[str, ...] = ("overhead", "front"),
    episodes: int = 2,
    frames: int = 4,
    size: int = 32,
    glam_meta: dict | None = None,
    seed: int = 0,
) -> Path:
    """A real LeRobot v3 dataset (LeRobot's own create/add_frame/save_episode/finalize), 32x32 AV1 video.

    32 px is about the smallest frame SVT-AV1 encodes. `robot=False` leaves out state and action (UMI-like).
    """
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot import provenance, schema

    feats = schema.features(image_size=(size, size), cameras=cameras, robot=robot)
    rng = np.random.default_rng(seed)
    ds = LeRobotDataset.create(
        repo_id, fps=schema.DEFAULT_FPS, features=feats, root=root, use_videos=True, video_backend="pyav"
    )  # skips the noisy torchcodec probe
    for _ in range(episodes):
        for _ in range(frames):
            frame = {"task": "stack the red cube on the blue cube"}
            for key, ft in feats.items():
                if ft["dtype"] == "video":
                    frame[key] = rng.integers(0, 255, ft["shape"], dtype=np.uint8)
                else:
                    frame[key] = rng.standard_normal(ft["shape"]).astype(np.float32)
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    shutil.rmtree(Path(root) / "images", ignore_errors=True)  # LeRobot's staging folder, empty by now
    if glam_meta is not None:
        provenance.write(root, {"repo_id": repo_id, **glam_meta})
    return Path(root)


@pytest.fixture
def make_tiny_dataset(tmp_path):
    """`make_tiny_dataset(name, **kw)` -> root of a tiny real LeRobot dataset under tmp_path (see write_tiny_dataset)."""

    def make(name: str = "tiny", **kw) -> Path:
        kw.setdefault("repo_id", f"test-user/{name}")
        return write_tiny_dataset(tmp_path / name, **kw)

    return make


@pytest.fixture(scope="session")
def sim_mixture(tmp_path_factory):
    """Simulated lift: 2 Kinova (target) + 2 UMI (auxiliary) episodes from seeds 0-1, 32 px, and their mixture."""
    import yaml

    from glam_lerobot.sim.record import record

    base = tmp_path_factory.mktemp("wm-sim")
    record("lift", "kinova", 2, 0, base / "kinova", repo_id="test/kinova-lift", image_size=32, workers=1)
    record("lift", "umi", 2, 0, base / "umi", repo_id="test/umi-lift", image_size=32, workers=1)
    path = base / "mixture.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "lift",
                "target": [{"repo_id": "test/kinova-lift", "root": "kinova"}],
                "auxiliary": [{"repo_id": "test/umi-lift", "root": "umi"}],
            }
        )
    )
    return path
