"""The runner: run the stages of a recipe in order, skip what is done, resume what was interrupted."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from glam_lerobot.pipeline.context import Context, clear, new_console, write_json
from glam_lerobot.pipeline.recipe import MARKERS, Recipe, RecipeError, Stage
from glam_lerobot.pipeline.stages import KINDS


class StageFailed(RuntimeError):
    """A stage raised; earlier stages are kept, and running the recipe again resumes at this stage."""

    def __init__(self, stage: str, kind: str, cause: BaseException):
        self.stage, self.kind, self.cause = stage, kind, cause
        super().__init__(f"stage '{stage}' ({kind}) failed: {cause}")

    def __reduce__(self):  # so that it crosses from a worker process (run_recipes) intact
        return type(self), (self.stage, self.kind, self.cause)


@dataclass
class StageResult:
    name: str
    kind: str
    status: str  # "ran" | "skipped"
    seconds: float
    info: dict


@dataclass
class RunReport:
    recipe: Recipe
    results: list[StageResult]

    def status(self) -> dict[str, str]:
        return {r.name: r.status for r in self.results}


def stage_state(recipe: Recipe, stage: Stage) -> str:
    """'done' (marker matches and outputs exist), 'changed' (done with other settings) or 'pending'."""
    marker = recipe.marker(stage)
    if not marker.exists():
        return "pending"
    saved = json.loads(marker.read_text())
    if saved.get("fingerprint") != stage.fingerprint:
        return "changed"
    missing = [p for p in stage.outputs.values() if not p.exists()]
    return "pending" if missing else "done"


def run_recipe(recipe: Recipe, console=None, progress: bool = True) -> RunReport:
    """Run every stage that is not done yet, in order. Raises StageFailed (resumable) on the first failure."""
    console = console or new_console()
    (recipe.workdir / MARKERS).mkdir(parents=True, exist_ok=True)
    ctx = Context(recipe, console, recipe.workdir / "logs", progress)
    console.rule(f"[bold]pipeline {recipe.name}[/] -> {recipe.workdir}")
    results = []
    t_all = time.time()
    for i, stage in enumerate(recipe.stages, 1):
        state = stage_state(recipe, stage)
        title = f"[{i}/{len(recipe.stages)}] {stage.name} ({stage.kind})"
        if state == "done":
            saved = json.loads(recipe.marker(stage).read_text())
            console.print(f"[green]done[/]    {title}: finished earlier, skipped")
            results.append(StageResult(stage.name, stage.kind, "skipped", 0.0, saved.get("info", {})))
            continue
        if state == "changed":
            raise RecipeError(
                f"stage '{stage.name}' was finished earlier with other settings (or its inputs changed): "
                f"remove {recipe.marker(stage)} and its outputs ({', '.join(map(str, stage.outputs.values()))}) "
                "to redo it, or run with another --workdir"
            )
        console.rule(f"[bold cyan]{title}")
        _forget_other_settings(recipe, stage, ctx)
        start, cpu0 = time.time(), _cpu_seconds()
        try:
            info = KINDS[stage.kind].run(stage, ctx) or {}
        except (KeyboardInterrupt, Exception) as exc:
            console.print(f"[bold red]stage '{stage.name}' failed:[/] {exc}")
            console.print(f"finished stages are kept; run the same command again to resume at '{stage.name}'")
            raise StageFailed(stage.name, stage.kind, exc) from exc
        seconds, cpu = time.time() - start, _cpu_seconds() - cpu0
        marker = {
            "stage": stage.name,
            "run": stage.kind,
            "fingerprint": stage.fingerprint,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "settings": stage.settings,
            "outputs": {k: str(v) for k, v in stage.outputs.items()},
            "info": info,
        }
        write_json(recipe.marker(stage), marker)
        console.print(f"[green]done[/]    {title} in {seconds:.0f} s ({cpu:.0f} s of CPU)")
        results.append(StageResult(stage.name, stage.kind, "ran", seconds, info))
    ran = [r for r in results if r.status == "ran"]
    console.rule(
        f"pipeline {recipe.name}: {len(ran)} stage(s) run, {len(results) - len(ran)} skipped, "
        f"{time.time() - t_all:.0f} s"
    )
    return RunReport(recipe, results)


def run_recipes(
    recipes: list[Recipe], jobs: int = 1, logs: list | None = None, on_done=None
) -> list[RunReport | BaseException]:
    """Run independent recipes (no output in common): one after another, or `jobs` at a time in spawned processes.

    A failure does not stop the others: each entry of the result is that recipe's report or the exception it
    raised, and its finished stages are kept, so running the same recipes again redoes only what failed. `logs[i]`
    (a path) receives recipe i's console output instead of the terminal; `on_done(i, outcome)` is called as each
    recipe ends, in the order they end."""
    logs = logs or [None] * len(recipes)
    outcomes: list[RunReport | BaseException | None] = [None] * len(recipes)

    def done(i: int, outcome) -> None:
        outcomes[i] = outcome
        if on_done is not None:
            on_done(i, outcome)

    if jobs <= 1 or len(recipes) <= 1:
        for i, recipe in enumerate(recipes):
            try:
                done(i, _run_logged(recipe, logs[i]))
            except Exception as exc:  # noqa: BLE001 - returned to the caller, which names the recipe
                done(i, exc)
        return outcomes
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:  # spawn: no forked torch state
        futures = {pool.submit(_run_logged, r, logs[i]): i for i, r in enumerate(recipes)}
        for future in cf.as_completed(futures):
            exc = future.exception()
            done(futures[future], exc if exc is not None else future.result())
    return outcomes


def _run_logged(recipe: Recipe, log=None) -> RunReport:
    """run_recipe with its console written to the file `log` (appended), or to the terminal."""
    if log is None:
        return run_recipe(recipe)
    from rich.console import Console

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return run_recipe(recipe, console=Console(file=f, width=160, highlight=False), progress=False)


def _forget_other_settings(recipe: Recipe, stage: Stage, ctx: Context) -> None:
    """Unfinished work is resumed only if it was started with the same settings; otherwise it is removed first."""
    started = recipe.workdir / MARKERS / f"{stage.name}.started.json"
    if started.exists() and json.loads(started.read_text()).get("fingerprint") != stage.fingerprint:
        for out in stage.outputs.values():
            for path in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".masks-work")):
                clear(path, ctx, "unfinished work of the same stage with other settings")
    write_json(started, {"stage": stage.name, "fingerprint": stage.fingerprint})


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (writer workers, lerobot-train, lerobot-eval)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def describe(recipe: Recipe) -> list[dict]:
    """One row per stage for `pipeline show`: kind, state, inputs (upstream stages), outputs."""
    return [
        {
            "name": s.name,
            "run": s.kind,
            "state": stage_state(recipe, s),
            "after": s.depends,
            "settings": s.settings,
            "outputs": {k: str(v) for k, v in s.outputs.items()},
        }
        for s in recipe.stages
    ]
