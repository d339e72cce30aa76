"""Scripted-expert success rate per task and embodiment (physics only, no rendering).

    uv run python benchmarks/bench_sim_experts.py [--seeds 50] [--tasks lift,stack_two] [--embodiments kinova,umi]

Prints a table of successes / seeds and the seeds that failed. Target: >= 90% everywhere.
"""

from __future__ import annotations

import argparse
import time

from glam_lerobot.sim import EMBODIMENTS, TASKS
from glam_lerobot.sim.experts import run_expert
from glam_lerobot.sim.world import SimWorld


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--embodiments", default=",".join(EMBODIMENTS))
    args = ap.parse_args()
    print(f"{'task':<12} {'embodiment':<10} {'success':>9} {'rate':>6} {'s/episode':>10}  failed seeds")
    for task in args.tasks.split(","):
        for emb in args.embodiments.split(","):
            world = SimWorld(task, emb)
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            t0 = time.perf_counter()
            failed = [s for s in seeds if not run_expert(world, s)]
            dt = (time.perf_counter() - t0) / args.seeds
            ok = args.seeds - len(failed)
            print(f"{task:<12} {emb:<10} {ok:>4}/{args.seeds:<4} {ok / args.seeds:>6.0%} {dt:>10.2f}  {failed}", flush=True)


if __name__ == "__main__":
    main()
