"""Time a recipe stage by stage: wall clock and CPU seconds, and what that means on an idle 2-core machine.

    uv run python benchmarks/bench_pipeline.py [RECIPE] [--workdir DIR] [--set name=value ...]

Runs RECIPE (default: the embedded default) like `glam-lerobot pipeline run`, then prints per stage the wall-clock
seconds, the CPU seconds (this process and its children: writer workers, lerobot-train, lerobot-eval) and the
estimate for an idle 2-core machine, CPU / 2 (lower bound: both cores busy) to CPU / 1 (upper bound: one core).
On a shared machine the wall clock mostly measures the neighbours; the CPU seconds do not.
Stages already done in DIR are reported from their markers (the run that did them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from glam_lerobot import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default="default")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    recipe = pipeline.load_recipe(args.recipe, workdir=workdir, overrides=pipeline.parse_overrides(args.sets))
    pipeline.run_recipe(recipe)

    print(f"\n{'stage':14s} {'run':13s} {'wall s':>8s} {'CPU s':>8s} {'idle 2-core s':>15s}")
    wall = cpu = 0.0
    for stage in recipe.stages:
        marker = json.loads(recipe.marker(stage).read_text())
        w, c = marker["seconds"], marker.get("cpu_seconds", 0.0)
        wall, cpu = wall + w, cpu + c
        print(f"{stage.name:14s} {stage.kind:13s} {w:8.0f} {c:8.0f} {c / 2:7.0f} .. {c:5.0f}")
    print(f"{'total':28s} {wall:8.0f} {cpu:8.0f} {cpu / 2:7.0f} .. {cpu:5.0f}")
    print(f"estimate on an idle 2-core machine: {cpu / 120:.1f} to {cpu / 60:.1f} minutes (workdir {workdir})")


if __name__ == "__main__":
    main()
