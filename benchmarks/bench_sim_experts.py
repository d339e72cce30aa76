"""Scripted-expert success rate per task and embodiment (physics only, no rendering).

    uv run python benchmarks/bench_sim_experts.py [--seeds 50] [--tasks lift,stack_two] [--embodiments kinova,umi]
                                                  [--plot expert_success.png]

Prints a table of successes / seeds and the seeds that failed (and with --plot a bar chart). Target: >= 90%.
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
    ap.add_argument("--plot", default=None, help="write a PNG bar chart of the success rates here")
    args = ap.parse_args()
    rates: dict[tuple[str, str], float] = {}
    print(f"{'task':<12} {'embodiment':<10} {'success':>9} {'rate':>6} {'s/episode':>10}  failed seeds")
    for task in args.tasks.split(","):
        for emb in args.embodiments.split(","):
            world = SimWorld(task, emb)
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            t0 = time.perf_counter()
            failed = [s for s in seeds if not run_expert(world, s)]
            dt = (time.perf_counter() - t0) / args.seeds
            ok = args.seeds - len(failed)
            rates[task, emb] = ok / args.seeds
            print(
                f"{task:<12} {emb:<10} {ok:>4}/{args.seeds:<4} {ok / args.seeds:>6.0%} {dt:>10.2f}  {failed}",
                flush=True,
            )
    if args.plot:
        plot(rates, args.seeds, args.plot)


def plot(rates: dict[tuple[str, str], float], seeds: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    task_names = list(dict.fromkeys(t for t, _ in rates))
    embodiments = list(dict.fromkeys(e for _, e in rates))
    x = np.arange(len(task_names))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, emb in enumerate(embodiments):
        vals = [100 * rates.get((t, emb), np.nan) for t in task_names]
        ax.bar(x + (i - (len(embodiments) - 1) / 2) * 0.38, vals, 0.36, label=emb)
    ax.axhline(90, color="gray", ls="--", lw=1, label="target 90%")
    ax.set_xticks(x, task_names)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"expert success (%), {seeds} seeds")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
