"""Simulator speed: control steps per second while recording, and wall time to record stack-two datasets.

    uv run python benchmarks/bench_sim.py [--episodes 10] [--image-size 96] [--skip-write]

1. Steps/s of the recording loop (scripted expert + IK + physics + two cameras RGB + ground-truth masks), pinned
   to one CPU core with one llvmpipe thread, for stack_two on each embodiment, with a breakdown without rendering.
2. Wall time of `sim record` (2 workers, video encoding, aggregation) for --episodes stack-two episodes per
   embodiment, and that time scaled to 100 episodes (linear extrapolation, said so in the output).
Figures depend on the machine's load; the printout includes the load average.
"""

from __future__ import annotations

import os

os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe renders with one thread: "one core" means one core

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from glam_lerobot.sim.experts import run_expert  # noqa: E402
from glam_lerobot.sim.record import record, record_episode  # noqa: E402
from glam_lerobot.sim.world import SimWorld  # noqa: E402

EMBODIMENTS = ("kinova", "umi")


def steps_per_second(task: str, embodiment: str, seeds: range, image_size: int) -> tuple[float, float]:
    """(steps/s recording with cameras + masks, steps/s physics + expert only) on the current core."""
    record_episode(task, embodiment, 10_000, image_size, masks=True)  # warm-up: GL contexts, model compile
    steps, t0 = 0, time.perf_counter()
    for s in seeds:
        _, frames = record_episode(task, embodiment, s, image_size, masks=True)
        steps += len(frames["sim.qpos"])
    rendered = steps / (time.perf_counter() - t0)
    world, count = SimWorld(task, embodiment), [0]
    t0 = time.perf_counter()
    for s in seeds:
        run_expert(world, s, on_step=lambda w, a: count.__setitem__(0, count[0] + 1))
    physics = count[0] / (time.perf_counter() - t0)
    return rendered, physics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="stack_two")
    ap.add_argument("--episodes", type=int, default=10, help="episodes per embodiment for the dataset write")
    ap.add_argument("--speed-episodes", type=int, default=5, help="episodes per embodiment for steps/s")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--skip-write", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    print(f"\n{args.task}: control steps per second on one core ({args.image_size}px, 2 cameras RGB + masks)")
    for emb in EMBODIMENTS:
        rendered, physics = steps_per_second(args.task, emb, range(args.speed_episodes), args.image_size)
        print(f"  {emb:<7} recording {rendered:7.0f} steps/s   (expert + IK + physics alone: {physics:7.0f} steps/s)")
    os.sched_setaffinity(0, affinity)

    if args.skip_write:
        return
    print(f"\nsim record --task {args.task} --episodes {args.episodes} --workers 2 (video encoding included)")
    work = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    try:
        for emb in EMBODIMENTS:
            t0 = time.perf_counter()
            summary = record(args.task, emb, args.episodes, seed=0, root=work / emb, image_size=args.image_size,
                             masks=True, workers=2)
            dt = time.perf_counter() - t0
            print(f"  {emb:<7} {summary.episodes} episodes, {summary.frames} frames in {dt:6.1f} s "
                  f"-> {dt / args.episodes * 100 / 60:5.1f} min for 100 episodes (extrapolated linearly)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
