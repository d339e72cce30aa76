"""Local workers: does a second writer process pay on this machine? And what does a worker cost to start?

Prints, for `sim record` of N episodes and a UMI ingest of M episodes, the wall time with --workers 1 (one
shard, in this process) and --workers 2 (datatrove's local executor, two spawned processes, shards merged), and
the seconds a fresh worker process spends importing what a shard task needs, with the heaviest imports.
Run: nice uv run python benchmarks/bench_workers.py [--sim-episodes 40] [--umi-episodes 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SVT_LOG", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORKER_IMPORTS = (
    "import glam_lerobot.writing, glam_lerobot.executors, glam_lerobot.sim.record, glam_lerobot.ingest.umi; "
    "import lerobot.datasets.lerobot_dataset"
)


def worker_start_up() -> tuple[float, list[tuple[float, str]]]:
    """Seconds a fresh interpreter takes to import a shard task's modules (best of 2), and the six packages that
    cost most of it (cumulative seconds, from a third run under -X importtime, which itself adds a little)."""
    plain = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", WORKER_IMPORTS], check=True)
        plain.append(time.perf_counter() - start)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WORKER_IMPORTS], capture_output=True, text=True, check=True
    )
    packages: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and "." not in m.group(3):  # a package itself, at whatever depth it was first imported
            packages[m.group(3)] = max(packages.get(m.group(3), 0.0), int(m.group(1)) / 1e6)
    return min(plain), sorted(((s, n) for n, s in packages.items()), reverse=True)[:6]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-episodes", type=int, default=40)
    ap.add_argument("--task", default="lift")
    ap.add_argument("--umi-episodes", type=int, default=100)
    ap.add_argument("--umi-seconds", type=float, default=2.0, help="length of each UMI episode")
    ap.add_argument("--umi-size", type=int, default=128)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from bench_ingest import make_umi

    from glam_lerobot.ingest import umi
    from glam_lerobot.runtime import usable_cores
    from glam_lerobot.sim.record import record

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-workers-"))
    work.mkdir(parents=True, exist_ok=True)
    buffer = work / "umi.zarr.zip"
    if not buffer.exists():
        make_umi(buffer, args.umi_episodes, args.umi_seconds, args.umi_size)

    print(f"{usable_cores()} usable cores")
    seconds, heaviest = worker_start_up()
    print(f"worker start-up (a fresh interpreter importing a shard task's modules): {seconds:.1f} s; the heaviest:")
    for s, name in heaviest:
        print(f"  {name:<28} {s:5.1f} s")

    rows = []
    for workers in (1, 2):
        out = work / f"sim-w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t = timed(lambda out=out, w=workers: record(args.task, "kinova", args.sim_episodes, 0, out, workers=w))
        rows.append((f"sim record kinova/{args.task}, {args.sim_episodes} episodes", workers, t))
    for workers in (1, 2):
        out = work / f"umi-w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        plan = umi.plan([buffer])
        t = timed(lambda out=out, w=workers, plan=plan: plan.write(out, "bench/umi", workers=w))
        rows.append((f"ingest umi, {args.umi_episodes} episodes at {args.umi_size} px", workers, t))
    print(f"\n{'job':<48} {'workers':>7} {'seconds':>8} {'speed-up':>9}")
    for job, workers, t in rows:
        base = next(b for j, w, b in rows if j == job and w == 1)
        print(f"{job:<48} {workers:>7} {t:8.1f} {base / t:8.2f}x")


if __name__ == "__main__":
    main()
