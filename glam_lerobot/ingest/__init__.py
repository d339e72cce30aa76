"""Ingest raw recordings (UMI replay buffers, ROS bags, HDF5 episode files) into canonical LeRobot datasets.

Each reader module (`umi`, `rosbag`, `hdf5`) has
  plan(paths, **options) -> IngestPlan   cheap: opens the files, checks their layout, lists one job per episode
  produce(job) -> {"task", "frames"}     heavy: reads one episode and returns its canonical columns
and `IngestPlan.write` hands both to glam_lerobot.writing.write_dataset (parallel shards, resume, atomic rename).
Episodes found bad while planning carry their error in the job, so `--skip-bad` lists them in the summary like
any other bad episode, and without `--skip-bad` the ingest stops before writing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glam_lerobot import schema


@dataclass
class IngestPlan:
    fps: int
    features: dict[str, dict]
    jobs: list[dict]
    produce: Callable[[dict], dict]
    glam_meta: dict[str, Any]
    robot_type: str | None = None
    notes: list[str] = field(default_factory=list)  # what the summary should tell the user about this input

    @property
    def bad(self) -> list[dict]:
        return [job for job in self.jobs if job.get("bad")]

    def write(
        self,
        root: Path | str,
        repo_id: str,
        *,
        workers: int | str = 1,
        skip_bad: bool = False,
        command: str = "",
        overwrite: bool = False,
        executor=None,
    ):
        """Write the dataset; returns glam_lerobot.writing.WriteSummary."""
        from glam_lerobot.ingest.validate import bad_job
        from glam_lerobot.writing import write_dataset

        if not skip_bad:
            for job in self.bad:
                bad_job(job)  # raises: nothing has been written yet
        meta = dict(self.glam_meta)
        if command:
            meta["source"] = {**meta["source"], "command": command}
        summary = write_dataset(
            root,
            repo_id,
            self.fps,
            self.features,
            self.jobs,
            self.produce,
            workers=workers,
            skip_bad=skip_bad,
            glam_meta=meta,
            robot_type=self.robot_type,
            desc=f"ingest {meta['source']['format']}",
            overwrite=overwrite,
            executor=executor,
        )
        summary.notes = list(self.notes)
        return summary


def parse_camera_map(spec: str | dict[str, str]) -> dict[str, str]:
    """'camera0=front,camera1=overhead' -> {'camera0': 'front', ...}; targets must be schema.CAMERAS."""
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for item in filter(None, (s.strip() for s in spec.split(","))):
            if "=" not in item:
                raise ValueError(f"--camera-map entries look like source=target, got {item!r}")
            src, dst = (s.strip() for s in item.split("=", 1))
            pairs.append((src, dst))
    out = {}
    for src, dst in pairs:
        if dst not in schema.CAMERAS:
            raise ValueError(f"--camera-map target {dst!r} must be one of {schema.CAMERAS}")
        if dst in out.values():
            raise ValueError(f"--camera-map maps two cameras onto {dst!r}")
        out[src] = dst
    return out


def parse_image_size(spec: str | None) -> tuple[int, int] | None:
    """'224x224' or '224' -> (224, 224); None keeps the recorded size."""
    if not spec:
        return None
    parts = spec.lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    h, w = (int(p) for p in parts)
    return h, w
