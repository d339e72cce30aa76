"""How fast push and pull move a dataset through a Hub-compatible server on loopback, and what a no-op re-push
and a derived revision cost.

    uv run python benchmarks/hub_push_pull.py [--episodes 10] [--frames 100] [--size 96]

Starts tests/hubserver.py in a temp dir (the same server the tests use), writes a LeRobot dataset with two
incompressible image columns (noise PNGs embedded in parquet, so the bytes are what they look like), then times:
validation, the first push, a re-push with nothing changed, a pull into a clean cache, and a derived revision
(one column added with LeRobot's add_features) pushed to its own branch. Prints one line per step and the peak
memory of this process. Loopback numbers are an upper bound for a real Hub (no network, no Xet).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import hubserver  # noqa: E402

TOKEN = "hf_benchmark_token"


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="glam-hub-bench-"))
    server = hubserver.start(str(work / "hub"), token=TOKEN)
    os.environ.update(
        HF_ENDPOINT=server.url,
        HF_HUB_DISABLE_XET="1",
        HF_TOKEN=TOKEN,
        HF_HOME=str(work / "hf"),
        HF_LEROBOT_HOME=str(work / "lerobot"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    os.environ.pop("HF_HUB_OFFLINE", None)
    try:
        import numpy as np
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        from glam_lerobot import hub, provenance, revisions, schema

        h = w = args.size
        feats = {
            "observation.images.overhead": {
                "dtype": "image",
                "shape": (h, w, 3),
                "names": ["height", "width", "channels"],
            },
            "observation.images.front": {
                "dtype": "image",
                "shape": (h, w, 3),
                "names": ["height", "width", "channels"],
            },
            schema.STATE: {"dtype": "float32", "shape": (8,), "names": schema.joint_names()},
            schema.ACTION: {"dtype": "float32", "shape": (8,), "names": schema.joint_names()},
        }
        root = work / "ds"
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        ds = LeRobotDataset.create(
            "bench/ds", fps=10, features=feats, root=root, use_videos=False, video_backend="pyav"
        )
        for _ in range(args.episodes):
            for _ in range(args.frames):
                frame = {
                    k: rng.integers(0, 255, ft["shape"], dtype=np.uint8)
                    if ft["dtype"] == "image"
                    else rng.standard_normal(ft["shape"]).astype(np.float32)
                    for k, ft in feats.items()
                }
                ds.add_frame({**frame, "task": "benchmark"})
            ds.save_episode()
        ds.finalize()
        shutil.rmtree(root / "images", ignore_errors=True)
        provenance.write(root, {"repo_id": "test-user/bench", "embodiment": "kinova_gen3", "task": "benchmark"})
        mb = size_of(root) / 1e6
        frames = args.episodes * args.frames
        print(
            f"dataset: {args.episodes} episodes, {frames} frames, 2 cameras {h}x{w} noise PNG, {mb:.1f} MB "
            f"(written in {time.perf_counter() - t:.1f} s)"
        )

        def timed(label: str, fn, nbytes: float | None = None):
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
            rate = f", {nbytes / 1e6 / dt:.1f} MB/s" if nbytes else ""
            print(f"{label:<42} {dt:7.2f} s{rate}")
            return out

        timed("validate (LeRobot load + checks)", lambda: hub.validate_dataset(root))
        first = timed("push, first (one commit)", lambda: hub.push_dataset(root, "test-user/bench"), mb * 1e6)
        again = timed("push again, nothing changed", lambda: hub.push_dataset(root, "test-user/bench"))
        assert again.commit is None, again
        pulled = timed("pull v3.0 into a clean cache", lambda: hub.pull("test-user/bench", progress=False), mb * 1e6)
        assert pulled.files == len(first.added) + 1  # + the .gitattributes the Hub creates
        latents = np.zeros((frames, 8), np.float32)
        child = timed(
            "derive latents-v1 (add_features, local)",
            lambda: revisions.add_columns(
                root,
                {schema.LATENT: (latents, {"dtype": "float32", "shape": (8,), "names": None})},
                revision="latents-v1",
                command="benchmark",
                output_root=work / "latents",
            ),
        )
        derived = timed("push derived revision (own branch + tag)", lambda: hub.push_dataset(child, "test-user/bench"))
        print(
            f"  derived push sent {derived.bytes_sent / 1e6:.1f} MB: {len(derived.changed)} changed, "
            f"{len(derived.added)} added, {derived.unchanged} unchanged files"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
