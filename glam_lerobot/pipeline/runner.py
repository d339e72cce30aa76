"""The runner: run the stages of a recipe in order, skip what is done, resume what was interrupted."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from glam_lerobot.pipeline.context import Context, clear, file_console, new_console, write_json
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


def run_recipe(recipe: Recipe, console=None, progress: bool = True, jobs: int | None = None) -> RunReport:
    """Run every stage that is not done yet. Raises StageFailed (resumable) for the first stage that failed.

    With `jobs` > 1 (default: the recipe's `jobs`), a stage whose kind works in a child process (lerobot-train,
    lerobot-eval) starts as soon as the stages it reads from are finished, beside what else runs, up to `jobs`
    stages at once; its console output goes to logs/<stage>.console.log. Every other stage runs in this process,
    in recipe order. After a failure the stages that do not read from it still run. With one job this is the
    recipe order, one stage after the other, stopping at the first failure."""
    console = console or new_console()
    jobs = max(1, jobs or recipe.jobs)
    (recipe.workdir / MARKERS).mkdir(parents=True, exist_ok=True)
    ctx = Context(recipe, console, recipe.workdir / "logs", progress)
    console.rule(f"[bold]pipeline {recipe.name}[/] -> {recipe.workdir}")
    t_all = time.time()
    results: dict[str, StageResult] = {}
    waiting: list[tuple[str, Stage]] = []
    for i, stage in enumerate(recipe.stages, 1):
        title = f"[{i}/{len(recipe.stages)}] {stage.name} ({stage.kind})"
        state = stage_state(recipe, stage)
        if state == "changed":  # checked for every stage before any runs: nothing is half redone
            raise RecipeError(
                f"stage '{stage.name}' was finished earlier with other settings (or its inputs changed): "
                f"remove {recipe.marker(stage)} and its outputs ({', '.join(map(str, stage.outputs.values()))}) "
                "to redo it, or run with another --workdir"
            )
        if state == "done":
            saved = json.loads(recipe.marker(stage).read_text())
            console.print(f"[green]done[/]    {title}: finished earlier, skipped")
            results[stage.name] = StageResult(stage.name, stage.kind, "skipped", 0.0, saved.get("info", {}))
        else:
            waiting.append((title, stage))
    _Scheduler(recipe, ctx, jobs, results).run(waiting)
    ran = [r for r in results.values() if r.status == "ran"]
    console.rule(
        f"pipeline {recipe.name}: {len(ran)} stage(s) run, {len(results) - len(ran)} skipped, "
        f"{time.time() - t_all:.0f} s"
    )
    return RunReport(recipe, [results[s.name] for s in recipe.stages])


class _Scheduler:
    """Starts each waiting stage when the stages it reads from are finished: subprocess kinds in threads (their work
    is a child process), the others here, one at a time and in recipe order."""

    def __init__(self, recipe: Recipe, ctx: Context, jobs: int, results: dict[str, StageResult]):
        self.recipe, self.ctx, self.jobs, self.results = recipe, ctx, jobs, results
        self.side: list[Context] = []  # contexts of the stages run beside others (their child CPU is theirs)

    def beside(self, stage: Stage) -> bool:
        return self.jobs > 1 and KINDS[stage.kind].subprocess

    def ready(self, waiting: list[tuple[str, Stage]]) -> tuple[str, Stage] | None:
        """The first waiting stage whose inputs are finished; one that runs here also waits for those above it
        that run here (they keep the recipe's order)."""
        for k, (_, stage) in enumerate(waiting):
            if all(d in self.results for d in stage.depends) and (
                self.beside(stage) or all(self.beside(s) for _, s in waiting[:k])
            ):
                return waiting[k]
        return None

    def run(self, waiting: list[tuple[str, Stage]]) -> None:
        import concurrent.futures as cf

        console, failure = self.ctx.console, None
        running: dict[cf.Future, tuple[str, Stage]] = {}
        pool = cf.ThreadPoolExecutor(self.jobs) if self.jobs > 1 else None
        try:
            while waiting or running:
                # after a failure, one job stops; side by side, the stages that do not need the failed one go on
                nxt = None if failure and self.jobs == 1 else self.ready(waiting)
                if nxt is not None and len(running) < self.jobs:
                    waiting.remove(nxt)
                    title, stage = nxt
                    if self.beside(stage):
                        log = self.ctx.log_dir / f"{stage.name}.console.log"
                        console.print(f"[cyan]started[/] {title} beside other stages; its output: {log}")
                        running[pool.submit(self.run_beside, stage, title, log)] = nxt
                        continue
                    console.rule(f"[bold cyan]{title}")
                    try:
                        self.results[stage.name] = self.run_here(stage, title)
                    except StageFailed as exc:
                        failure = failure or exc
                        if isinstance(exc.cause, KeyboardInterrupt):
                            waiting.clear()  # Ctrl-C: nothing more starts
                    continue
                if not running:
                    break  # what is left needs a stage that failed
                try:
                    finished = cf.wait(running, return_when=cf.FIRST_COMPLETED)[0]
                except KeyboardInterrupt as exc:  # Ctrl-C reaches the children too; wait for them to stop
                    _, stage = next(iter(running.values()))
                    failure = failure or StageFailed(stage.name, stage.kind, exc)
                    waiting.clear()
                    continue
                for future in finished:
                    title, stage = running.pop(future)
                    try:
                        result = self.results[stage.name] = future.result()
                        console.print(f"[green]done[/]    {title} in {result.seconds:.0f} s (beside other stages)")
                    except StageFailed as exc:
                        console.print(f"[bold red]stage '{stage.name}' failed:[/] {exc.cause}")
                        failure = failure or exc
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if failure is not None:
            console.print(f"finished stages are kept; run the same command again to resume at '{failure.stage}'")
            raise failure

    def side_cpu(self) -> float:
        return sum(c.child_cpu for c in self.side)

    def run_here(self, stage: Stage, title: str) -> StageResult:
        cpu0, side0 = _cpu_seconds(), self.side_cpu()
        return _run_stage(
            self.recipe, stage, self.ctx, title, lambda: _cpu_seconds() - cpu0 - (self.side_cpu() - side0)
        )

    def run_beside(self, stage: Stage, title: str, log: Path) -> StageResult:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            ctx = Context(self.recipe, file_console(f), self.ctx.log_dir, progress=False)
            self.side.append(ctx)
            return _run_stage(self.recipe, stage, ctx, title, lambda: ctx.child_cpu)


def _run_stage(recipe: Recipe, stage: Stage, ctx: Context, title: str, cpu_used) -> StageResult:
    """Run one stage and write its marker; any exception (Ctrl-C included) becomes a resumable StageFailed."""
    _forget_other_settings(recipe, stage, ctx)
    start = time.time()
    try:
        info = KINDS[stage.kind].run(stage, ctx) or {}
    except (KeyboardInterrupt, Exception) as exc:
        ctx.console.print(f"[bold red]stage '{stage.name}' failed:[/] {exc}")
        raise StageFailed(stage.name, stage.kind, exc) from exc
    end = time.time()
    seconds, cpu = end - start, cpu_used()
    marker = {
        "stage": stage.name,
        "run": stage.kind,
        "fingerprint": stage.fingerprint,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "started_at": start,  # epoch seconds: the summary's wall clock of stages that ran side by side
        "finished_at": end,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": stage.settings,
        "outputs": {k: str(v) for k, v in stage.outputs.items()},
        "info": info,
    }
    write_json(recipe.marker(stage), marker)
    ctx.console.print(f"[green]done[/]    {title} in {seconds:.0f} s ({cpu:.0f} s of CPU)")
    return StageResult(stage.name, stage.kind, "ran", seconds, info)


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
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return run_recipe(recipe, console=file_console(f), progress=False)


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
