"""Pipelines: YAML recipes that chain the toolkit's stages, skip what is done, and resume what was interrupted.

A recipe is a list of named stages; each runs one kind of work with the same plain functions the CLI calls
(stock `lerobot-train` / `lerobot-eval` as subprocesses for the policy):

```yaml
name: default
vars: {workdir: runs/default, seed: 0, size: 64}     # ${name} anywhere below; --set name=value overrides
full_scale: "what a paper-scale run does differently"  # printed by the summary
jobs: 2                                               # lerobot-train/-eval stages side by side (--jobs overrides)
stages:
  - name: kinova                                      # unique; later stages refer to ${kinova.dataset}
    run: record
    with: {embodiment: kinova, task: stack_two, episodes: 4, seed: "${seed}", image_size: "${size}"}
    outputs: {dataset: "${workdir}/data/kinova"}     # optional: the default is ${workdir}/<name>
  - name: mix
    run: mixture
    with: {target: ["${kinova.dataset}"], auxiliary: ["${umi.dataset}"]}
```

Kinds (KINDS below lists each one's settings, inputs and outputs): record, ingest, masks, push, mixture, train_wm,
relabel, train_policy, evaluate, transfer, plot, summary.

Before anything runs, `load_recipe` resolves every variable and reference and checks every stage: known kind,
known settings, required settings present, and every input produced by an earlier stage or already on disk.

Side by side: with `jobs` > 1, a stage whose work is a child process (train_policy, evaluate) starts as soon as
the stages it reads from are finished, beside the others (its output in logs/<stage>.console.log); the in-process
stages keep their order. On 2 cores two 1-thread trainings side by side did 1.4x the work of one (the default recipe).

Skipping and resuming: a finished stage leaves `<workdir>/.pipeline/<name>.json` with a fingerprint of its
resolved settings and of the stages it read from. A stage is skipped when that marker matches and its outputs
exist; a marker for other settings stops the run (nothing is overwritten silently). An unfinished stage is run
again, and resumes the way its own function does: the dataset writer keeps finished shards, `masks add` its
per-episode work folder, `train-wm` and `lerobot-train` their last checkpoint; the other stages write to
`<output>.partial` and rename when done, or start over from a clean output.
"""

from glam_lerobot.pipeline.recipe import (
    MARKERS,
    Kind,
    Recipe,
    RecipeError,
    Stage,
    find_recipe,
    load_recipe,
    parse_overrides,
    parse_recipe,
    shipped_recipe_dirs,
    substitute,
)
from glam_lerobot.pipeline.runner import (
    RunReport,
    StageFailed,
    StageResult,
    describe,
    run_recipe,
    run_recipes,
    stage_state,
)
from glam_lerobot.pipeline.stages import KINDS

__all__ = [
    "KINDS",
    "MARKERS",
    "Kind",
    "Recipe",
    "RecipeError",
    "RunReport",
    "Stage",
    "StageFailed",
    "StageResult",
    "describe",
    "find_recipe",
    "load_recipe",
    "parse_overrides",
    "parse_recipe",
    "run_recipe",
    "run_recipes",
    "shipped_recipe_dirs",
    "stage_state",
    "substitute",
]
