"""CLI for pipelines: run a YAML recipe of stages (record ... evaluate, summary), or show what it would do."""

from __future__ import annotations

from pathlib import Path

import typer

from glam_lerobot.cli.errors import fail as _fail

RECIPE_HELP = (
    "a recipe YAML file, or the name of a shipped recipe in pipelines/ (default, stack_two_cpu, "
    "stack_two, stack_three, ...) \\[default: default]"
)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    pipeline = typer.Typer(
        help="Run declarative recipes (pipelines/*.yaml) that chain record/ingest, masks, push, mixture, train-wm, "
        "relabel, lerobot-train, lerobot-eval, transfer, plots and a summary.",
        no_args_is_help=True,
    )
    pipeline.command("run")(run)
    pipeline.command("show")(show)
    pipeline.command("list")(list_recipes)
    app.add_typer(pipeline, name="pipeline")


def _load(recipe: str | None, workdir: Path | None, sets: list[str] | None):
    from glam_lerobot.pipeline import RecipeError, load_recipe, parse_overrides

    try:
        return load_recipe(recipe, workdir=workdir, overrides=parse_overrides(sets or []))
    except RecipeError as exc:
        _fail(str(exc))


def run(
    recipe: str = typer.Argument(None, help=RECIPE_HELP),
    workdir: Path = typer.Option(
        None,
        help="folder for every output and the stage markers \\[default: the recipe's "
        "`workdir` variable, runs/<recipe name>]",
    ),
    set_: list[str] = typer.Option(None, "--set", help="override a recipe variable, e.g. --set seed=3 (repeatable)"),
    jobs: int = typer.Option(
        None,
        min=1,
        help="stages at most at once: lerobot-train / lerobot-eval stages whose inputs are ready run side by side, "
        "each logging to WORKDIR/logs/<stage>.console.log \\[default: the recipe's `jobs`, else 1]",
    ),
) -> None:
    """Run a recipe's stages in order (with --jobs, trainings and evaluations side by side), skipping stages
    already done and resuming an interrupted one.

    Reads the recipe and whatever its stages read. Writes every stage's outputs under WORKDIR (unless the recipe
    names other paths), WORKDIR/.pipeline/<stage>.json markers (finished stages, skipped on the next run) and
    WORKDIR/logs/ (lerobot-train / lerobot-eval output). Recipes are checked completely (kinds, settings,
    variables, inputs) before the first stage starts.
    """
    from glam_lerobot.pipeline import RecipeError, StageFailed, run_recipe

    loaded = _load(recipe, workdir, set_)
    try:
        run_recipe(loaded, jobs=jobs)
    except RecipeError as exc:
        _fail(str(exc))
    except StageFailed as exc:
        _fail(f"{exc}\nrun the same command again to resume at stage '{exc.stage}'")


def show(
    recipe: str = typer.Argument(None, help=RECIPE_HELP),
    workdir: Path = typer.Option(None, help="workdir to check stage states against"),
    set_: list[str] = typer.Option(None, "--set", help="override a recipe variable, e.g. --set seed=3"),
) -> None:
    """Check a recipe and print its stages: kind, state (done / pending / changed), settings and outputs.

    Reads the recipe and WORKDIR/.pipeline/ markers; writes nothing.
    """
    from rich.console import Console

    from glam_lerobot.pipeline import describe

    loaded = _load(recipe, workdir, set_)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{loaded.name}[/] ({loaded.path})")
    if loaded.description:
        console.print(loaded.description.strip())
    console.print(f"workdir {loaded.workdir}")
    if loaded.jobs > 1:
        console.print(
            f"jobs {loaded.jobs}: lerobot-train / lerobot-eval stages whose inputs are ready run side by side"
        )
    console.print("variables: " + ", ".join(f"{k}={v}" for k, v in loaded.variables.items() if k != "workdir"))
    colour = {"done": "green", "pending": "yellow", "changed": "red"}
    for i, row in enumerate(describe(loaded), 1):
        after = f"  (after {', '.join(row['after'])})" if row["after"] else ""
        console.print(
            f"\n{i:2d}. [bold]{row['name']}[/] ({row['run']}) [{colour[row['state']]}]{row['state']}[/]{after}"
        )
        if row["settings"]:
            console.print("    with: " + ", ".join(f"{k}={v}" for k, v in row["settings"].items()))
        for k, v in row["outputs"].items():
            console.print(f"    writes {k}: {v}")


def list_recipes() -> None:
    """List the shipped recipes (pipelines/*.yaml) with their descriptions. Reads them; writes nothing."""
    import yaml

    from glam_lerobot.pipeline import shipped_recipe_dirs

    for folder in shipped_recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            first = (data.get("description") or "").strip().splitlines()
            typer.echo(f"{path.stem:28s} {first[0] if first else ''}")
