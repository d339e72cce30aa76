"""meta/glam.json: what a dataset holds and where it came from, beside LeRobot's own meta/info.json.

LeRobot's DatasetInfo is a strict dataclass, so toolkit metadata lives in its own file:
  embodiment, arms, task          what was recorded
  source                          format, files with sha256, the mapping used, the command
  repo_id, revision, parent       this revision and the one it was derived from (None for an original)
  history                         one entry per derived step: command, columns added, model, details
  episode_seeds                   simulated data only: the seed of each episode, so it can be replayed
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from glam_lerobot import __version__
from glam_lerobot.schema import GLAM_META_PATH


def read(root: Path | str) -> dict[str, Any]:
    """The dataset's glam metadata, or {} for a dataset the toolkit did not write."""
    path = Path(root) / GLAM_META_PATH
    return json.loads(path.read_text()) if path.exists() else {}


def write(root: Path | str, meta: dict[str, Any]) -> Path:
    path = Path(root) / GLAM_META_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"toolkit": f"glam-lerobot {__version__}", **meta}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def update(root: Path | str, **fields: Any) -> dict[str, Any]:
    meta = read(root)
    meta.update(fields)
    write(root, meta)
    return meta


def derived(parent_meta: dict[str, Any], *, revision: str, parent: dict[str, Any], step: dict[str, Any]) -> dict:
    """Metadata of a revision derived from a parent: same origin, one more history entry."""
    meta = {k: v for k, v in parent_meta.items() if k not in ("revision", "parent", "write")}
    meta["revision"] = revision
    meta["parent"] = parent
    meta["history"] = [*parent_meta.get("history", []), step]
    return meta


def sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_records(paths: list[Path | str]) -> list[dict[str, Any]]:
    """[{path, bytes, sha256}] for a source's raw files, as recorded in `source.files`."""
    return [{"path": str(p), "bytes": Path(p).stat().st_size, "sha256": sha256(p)} for p in paths]
