"""Pipelines: YAML recipes that chain the toolkit's stages, skip what is done, and resume what was interrupted.

A recipe is a list of named stages; each runs one kind of work with the same plain functions the CLI calls
(stock `lerobot-train` / `lerobot-eval` as subprocesses for the policy):

```yaml
name: default
vars: {workdir: runs/default, seed: 0, size: 64}     # ${name} anywhere below; --set name=value overrides
full_scale: "what a paper-scale run does differently"  # printed by the summary
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

Skipping and resuming: a finished stage leaves `<workdir>/.pipeline/<name>.json` with a fingerprint of its
resolved settings and of the stages it read from. A stage is skipped when that marker matches and its outputs
exist; a marker for other settings stops the run (nothing is overwritten silently). An unfinished stage is run
again, and resumes the way its own function does: the dataset writer keeps finished shards, `masks add` its
per-episode work folder, `train-wm` and `lerobot-train` their last checkpoint; the other stages write to
`<output>.partial` and rename when done, or start over from a clean output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MARKERS = ".pipeline"  # inside the workdir: one completion marker per stage
_VAR = re.compile(r"\$\{([^}]*)\}")


class RecipeError(ValueError):
    """A recipe that cannot run; raised before any stage starts. The message names the file, stage and field."""


class StageFailed(RuntimeError):
    """A stage raised; earlier stages are kept, and running the recipe again resumes at this stage."""

    def __init__(self, stage: str, kind: str, cause: BaseException):
        self.stage, self.kind, self.cause = stage, kind, cause
        super().__init__(f"stage '{stage}' ({kind}) failed: {cause}")


# ---------------------------------------------------------------------------------------------- recipe model
@dataclass
class Stage:
    name: str
    kind: str
    settings: dict[str, Any]  # `with`, every variable and reference resolved
    outputs: dict[str, Path]  # named outputs (derived ones included), absolute
    depends: list[str] = field(default_factory=list)  # earlier stages whose outputs this one reads
    fingerprint: str = ""


@dataclass
class Recipe:
    name: str
    path: Path | None
    workdir: Path
    variables: dict[str, Any]
    stages: list[Stage]
    description: str = ""
    full_scale: str = ""

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def marker(self, stage: Stage) -> Path:
        return self.workdir / MARKERS / f"{stage.name}.json"


@dataclass
class Kind:
    """One kind of stage: what it accepts, what it reads and writes, and the function that does it."""

    run: Callable[[Stage, Context], dict]
    settings: tuple[str, ...]  # allowed keys of `with`
    required: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # keys of `with` holding paths (or lists of paths) made earlier or on disk
    outputs: tuple[str, ...] = ()  # named outputs; the first is the primary one (default ${workdir}/<name>)
    derived: Callable[[dict[str, Path]], dict[str, Path]] | None = None  # outputs inside the primary one
    help: str = ""


# ---------------------------------------------------------------------------------------------- variables
def _lookup(name: str, variables: dict, refs: dict[str, dict[str, Path]], where: str) -> Any:
    if name in variables:
        return variables[name]
    if "." in name:
        stage, _, out = name.partition(".")
        if stage in refs:
            if out not in refs[stage]:
                raise RecipeError(
                    f"{where}: ${{{name}}}: stage '{stage}' has no output '{out}' "
                    f"(it has {', '.join(sorted(refs[stage])) or 'none'})"
                )
            return str(refs[stage][out])
        raise RecipeError(f"{where}: ${{{name}}}: no earlier stage named '{stage}'")
    raise RecipeError(
        f"{where}: ${{{name}}}: no variable '{name}' (variables: {', '.join(sorted(variables))}; "
        "set one with --set NAME=VALUE)"
    )


def substitute(value: Any, variables: dict, refs: dict[str, dict[str, Path]], where: str) -> Any:
    """Replace ${var} and ${stage.output} in strings, recursively; "${x}" alone keeps x's type (e.g. an int)."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return _lookup(whole.group(1).strip(), variables, refs, where)
        return _VAR.sub(lambda m: str(_lookup(m.group(1).strip(), variables, refs, where)), value)
    if isinstance(value, list):
        return [substitute(v, variables, refs, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute(v, variables, refs, f"{where}.{k}") for k, v in value.items()}
    return value


def _resolve_variables(raw: dict, where: str) -> dict:
    """Variables may use each other (`data: ${workdir}/data`); resolve until stable, refusing cycles."""
    out = dict(raw)
    for _ in range(len(out) + 1):
        pending = {k for k, v in out.items() if isinstance(v, str) and _VAR.search(v)}
        if not pending:
            return out
        for k in pending:
            rest = {n: v for n, v in out.items() if n not in pending}
            try:
                out[k] = substitute(out[k], rest, {}, f"{where}: vars.{k}")
            except RecipeError:
                continue  # depends on another pending variable: next round
    names = [n for n in out if isinstance(out[n], str) and _VAR.search(out[n])]
    for n in names:  # report the first genuinely missing one, or the cycle
        for ref in _VAR.findall(out[n]):
            if ref.strip() not in out:
                substitute(out[n], out, {}, f"{where}: vars.{n}")
    raise RecipeError(f"{where}: vars {names} refer to each other in a cycle")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """['seed=3', 'workdir=/tmp/x'] -> {'seed': 3, 'workdir': '/tmp/x'} (values read as YAML scalars)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise RecipeError(f"--set expects NAME=VALUE, got {pair!r}")
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


# ---------------------------------------------------------------------------------------------- loading
def find_recipe(spec: str | Path | None) -> Path:
    """A recipe file; a bare name (`default`, `stack_two_cpu`) is looked up among the shipped recipes."""
    if spec is None:
        spec = "default"
    path = Path(spec)
    if path.is_file():
        return path
    for folder in shipped_recipe_dirs():
        for candidate in (folder / f"{spec}.yaml", folder / str(spec)):
            if candidate.is_file():
                return candidate
    known = ", ".join(sorted(p.stem for d in shipped_recipe_dirs() for p in d.glob("*.yaml")))
    raise RecipeError(f"recipe {spec}: no such file, and no shipped recipe of that name (shipped: {known})")


def shipped_recipe_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [d for d in (here.parent / "pipelines", here / "pipelines") if d.is_dir()]


def load_recipe(
    path: str | Path | None, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Recipe:
    """Read, resolve and check a recipe; raises RecipeError before anything runs."""
    path = find_recipe(path)
    where = f"recipe {path}"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{where}: not valid YAML: {e}") from e
    return parse_recipe(data, path=path, workdir=workdir, overrides=overrides)


def parse_recipe(
    data: Any, *, path: Path | None = None, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Recipe:
    where = f"recipe {path}" if path else "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping with name, vars, stages")
    unknown = set(data) - {"name", "description", "vars", "stages", "full_scale"}
    if unknown:
        raise RecipeError(
            f"{where}: unknown field(s) {sorted(unknown)} (allowed: name, description, vars, stages, full_scale)"
        )
    name = str(data.get("name") or (path.stem if path else "recipe"))
    raw_vars = data.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise RecipeError(f"{where}: 'vars' must be a mapping of name: value")
    overrides = dict(overrides or {})
    if workdir is not None:
        overrides["workdir"] = str(workdir)
    variables = {"workdir": f"runs/{name}", "seed": 0, **raw_vars}
    unknown_vars = sorted(set(overrides) - set(variables))
    if unknown_vars:
        raise RecipeError(
            f"{where}: --set {unknown_vars[0]}: the recipe has no variable '{unknown_vars[0]}' "
            f"(variables: {', '.join(sorted(variables))})"
        )
    variables.update(overrides)
    variables = _resolve_variables(variables, where)
    wd = Path(str(variables["workdir"])).expanduser().resolve()
    variables["workdir"] = str(wd)

    stages_raw = data.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise RecipeError(f"{where}: 'stages' must be a non-empty list")
    refs: dict[str, dict[str, Path]] = {}
    produced: dict[Path, str] = {}  # every output path -> the stage that writes it
    stages: list[Stage] = []
    all_names = [s.get("name") for s in stages_raw if isinstance(s, dict)]
    for i, raw in enumerate(stages_raw):
        at = f"{where}: stages[{i}]"
        if not isinstance(raw, dict):
            raise RecipeError(f"{at}: expected a mapping with name, run, with, outputs")
        bad = set(raw) - {"name", "run", "with", "outputs"}
        if bad:
            raise RecipeError(f"{at}: unknown field(s) {sorted(bad)} (allowed: name, run, with, outputs)")
        sname = raw.get("name")
        if not isinstance(sname, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", sname):
            raise RecipeError(f"{at}: 'name' must be an identifier (letters, digits, _ and -), got {sname!r}")
        at = f"{where}: stage '{sname}'"
        if sname in refs:
            raise RecipeError(f"{at}: a stage of this name comes earlier; names must be unique")
        kind_name = raw.get("run")
        if kind_name not in KINDS:
            raise RecipeError(f"{at}: unknown stage kind {kind_name!r} (run: one of {', '.join(KINDS)})")
        kind = KINDS[kind_name]
        settings = raw.get("with") or {}
        if not isinstance(settings, dict):
            raise RecipeError(f"{at}: 'with' must be a mapping of setting: value")
        unknown = sorted(set(settings) - set(kind.settings))
        if unknown:
            raise RecipeError(f"{at}: {kind_name} has no setting '{unknown[0]}' (settings: {', '.join(kind.settings)})")
        missing = [k for k in kind.required if k not in settings]
        if missing:
            raise RecipeError(f"{at}: {kind_name} needs the setting '{missing[0]}'")
        try:
            settings = substitute(settings, variables, refs, f"{at}: with")
        except RecipeError as e:
            later = re.search(r"no earlier stage named '([^']*)'", str(e))
            if later and later.group(1) in all_names:
                raise RecipeError(
                    f"{e}; '{later.group(1)}' comes later in the recipe: a stage can only read "
                    "outputs of stages before it"
                ) from None
            raise
        raw_out = substitute(raw.get("outputs") or {}, variables, refs, f"{at}: outputs")
        if not isinstance(raw_out, dict):
            raise RecipeError(f"{at}: 'outputs' must be a mapping of output name: path")
        bad_out = sorted(set(raw_out) - set(kind.outputs))
        if bad_out:
            raise RecipeError(
                f"{at}: {kind_name} has no output '{bad_out[0]}' (outputs: {', '.join(kind.outputs) or 'none'})"
            )
        outputs = {}
        for j, key in enumerate(kind.outputs):
            default = wd / sname if j == 0 else None
            value = raw_out.get(key, default)
            if value is None:
                raise RecipeError(f"{at}: output '{key}' needs a path")
            outputs[key] = Path(str(value)).expanduser().resolve()
        if kind.derived and outputs:
            outputs.update(kind.derived(outputs))
        for key, p in outputs.items():
            if p in produced:
                raise RecipeError(f"{at}: output '{key}' {p} is already written by stage '{produced[p]}'")
        settings, depends = _check_inputs(kind, kind_name, settings, produced, at)
        if kind_name == "summary":  # reports on everything before it
            depends = [s.name for s in stages]
        stage = Stage(sname, kind_name, settings, outputs, depends)
        stages.append(stage)
        refs[sname] = outputs
        produced.update(dict.fromkeys(outputs.values(), sname))

    by_name = {s.name: s for s in stages}
    for s in stages:  # a stage's fingerprint covers its settings and those of everything it reads from
        body = {
            "run": s.kind,
            "with": s.settings,
            "outputs": {k: str(v) for k, v in s.outputs.items()},
            "upstream": [by_name[d].fingerprint for d in s.depends],
        }
        s.fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Recipe(
        name=name,
        path=path,
        workdir=wd,
        variables=variables,
        stages=stages,
        description=str(data.get("description") or ""),
        full_scale=str(data.get("full_scale") or ""),
    )


def _input_paths(value: Any) -> list[tuple[str, Any]]:
    """(label, path-ish) pairs inside an input setting: a path, a list of paths, {label: path} or mixture refs."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [("", value)]
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            if isinstance(v, dict):  # a mixture entry {repo_id, revision, root}: only `root` is local
                if v.get("root") is not None:
                    out.append((f"[{i}].root", v["root"]))
            else:
                out += [(f"[{i}]{k}", p) for k, p in _input_paths(v)]
        return out
    if isinstance(value, dict):
        return [(f".{k}{lab}", p) for k, v in value.items() for lab, p in _input_paths(v)]
    return []


def _check_inputs(kind: Kind, kind_name: str, settings: dict, produced: dict[Path, str], at: str):
    """Make input paths absolute; each must be an earlier stage's output (or inside one) or exist already."""
    depends: list[str] = []

    def absolute(v: Any) -> Any:
        if isinstance(v, (str, Path)):
            return str(Path(str(v)).expanduser().resolve())
        if isinstance(v, list):
            return [
                {**e, "root": absolute(e["root"])} if isinstance(e, dict) and e.get("root") else absolute(e) for e in v
            ]
        if isinstance(v, dict):
            return {k: absolute(x) for k, x in v.items()}
        return v

    settings = dict(settings)
    for key in kind.inputs:
        if key not in settings:
            continue
        settings[key] = absolute(settings[key])
        for label, p in _input_paths(settings[key]):
            path = Path(str(p))
            owner = next((s for out, s in produced.items() if path == out or out in path.parents), None)
            if owner:
                if owner not in depends:
                    depends.append(owner)
            elif not path.exists():
                raise RecipeError(
                    f"{at}: input {key}{label} = {path}: no earlier stage writes it and it does not "
                    "exist (refer to an earlier stage's output as ${stage.output})"
                )
    return settings, depends


# ---------------------------------------------------------------------------------------------- running
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


@dataclass
class Context:
    recipe: Recipe
    console: Any
    log_dir: Path

    def info(self, name: str) -> dict:
        """The recorded result of an earlier, finished stage (its marker's `info`)."""
        marker = self.recipe.marker(self.recipe.stage(name))
        return json.loads(marker.read_text()).get("info", {}) if marker.exists() else {}


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


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # long paths and commands stay on one line, copyable


def run_recipe(recipe: Recipe, console=None) -> RunReport:
    """Run every stage that is not done yet, in order. Raises StageFailed (resumable) on the first failure."""
    console = console or _console()
    (recipe.workdir / MARKERS).mkdir(parents=True, exist_ok=True)
    ctx = Context(recipe, console, recipe.workdir / "logs")
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
        _write_json(recipe.marker(stage), marker)
        console.print(f"[green]done[/]    {title} in {seconds:.0f} s ({cpu:.0f} s of CPU)")
        results.append(StageResult(stage.name, stage.kind, "ran", seconds, info))
    ran = [r for r in results if r.status == "ran"]
    console.rule(
        f"pipeline {recipe.name}: {len(ran)} stage(s) run, {len(results) - len(ran)} skipped, "
        f"{time.time() - t_all:.0f} s"
    )
    return RunReport(recipe, results)


def _forget_other_settings(recipe: Recipe, stage: Stage, ctx: Context) -> None:
    """Unfinished work is resumed only if it was started with the same settings; otherwise it is removed first."""
    started = recipe.workdir / MARKERS / f"{stage.name}.started.json"
    if started.exists() and json.loads(started.read_text()).get("fingerprint") != stage.fingerprint:
        for out in stage.outputs.values():
            for path in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".masks-work")):
                _clear(path, ctx, "unfinished work of the same stage with other settings")
    _write_json(started, {"stage": stage.name, "fingerprint": stage.fingerprint})


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


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _clear(path: Path, ctx: Context, why: str) -> None:
    """Remove an unfinished output before a stage starts over; only ever inside the workdir."""
    if not path.exists() and not path.is_symlink():
        return
    if not _inside(path, ctx.recipe.workdir):
        raise RuntimeError(
            f"{path} exists ({why}) and is outside the workdir {ctx.recipe.workdir}, so the pipeline "
            "will not remove it; remove it yourself or choose another output path"
        )
    ctx.console.print(f"[yellow]removing[/] {path} ({why})")
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


class _Staged:
    """Write into `<out>.partial`, rename to `out` when the block finishes without error."""

    def __init__(self, out: Path, ctx: Context):
        self.out, self.ctx = out, ctx
        self.tmp = out.with_name(out.name + ".partial")

    def __enter__(self) -> Path:
        _clear(self.out, self.ctx, "left by an unfinished run")
        _clear(self.tmp, self.ctx, "left by an unfinished run")
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.tmp.rename(self.out)


def _print_lines(ctx: Context, lines: list[str]) -> None:
    for line in lines:
        ctx.console.print(line)


# ---------------------------------------------------------------------------------------------- stage kinds
def _record(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.sim.record import record

    w = stage.settings
    summary = record(
        w["task"],
        w["embodiment"],
        int(w["episodes"]),
        int(w.get("seed", 0)),
        stage.outputs["dataset"],
        repo_id=w.get("repo_id"),
        image_size=int(w.get("image_size", 96)),
        masks=bool(w.get("masks")),
        workers=int(w.get("workers", 1)),
    )
    _print_lines(ctx, summary.lines())
    return {"episodes": summary.episodes, "frames": summary.frames, "skipped": len(summary.skipped)}


def _ingest(stage: Stage, ctx: Context) -> dict:
    import importlib

    from glam_lerobot.ingest import parse_image_size

    w = dict(stage.settings)
    fmt = w.pop("format")
    try:
        reader = importlib.import_module(f"glam_lerobot.ingest.{fmt}")
    except ModuleNotFoundError as e:
        raise ValueError(f"ingest: no reader for format {fmt!r} (glam_lerobot/ingest/{fmt}.py)") from e
    paths = w.pop("paths")
    paths = [paths] if isinstance(paths, str) else paths
    repo_id, workers, skip_bad = w.pop("repo_id"), int(w.pop("workers", 1)), bool(w.pop("skip_bad", False))
    options = w.pop("options", {}) or {}
    if "image_size" in options and options["image_size"] is not None:
        options["image_size"] = parse_image_size(str(options["image_size"]))
    plan = reader.plan(paths, **options)
    command = f"glam-lerobot pipeline run {ctx.recipe.path} (stage {stage.name})"
    summary = plan.write(stage.outputs["dataset"], repo_id, workers=workers, skip_bad=skip_bad, command=command)
    _print_lines(ctx, summary.lines())
    return {"episodes": summary.episodes, "frames": summary.frames, "bad": len(summary.bad)}


def _masks(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.masks.add import add_masks

    w = dict(stage.settings)
    out = stage.outputs["dataset"]
    if out.exists() and (out / "meta" / "info.json").is_file():  # renamed into place: finished, marker not written
        return {"revision": w.get("revision"), "resumed": "complete"}
    summary = add_masks(
        w.pop("dataset"),
        w.pop("backend", "groundtruth"),
        output=out,
        command=f"glam-lerobot pipeline (stage {stage.name})",
        **w,
    )
    _print_lines(ctx, summary.lines())
    return {
        "revision": summary.revision,
        "episodes": summary.episodes,
        "frames": summary.frames,
        "empty": summary.empty,
    }


def _push(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot import hub

    w = stage.settings
    summary = hub.push(w["path"], w["repo_id"], w.get("revision"), private=w.get("private"))
    _print_lines(ctx, summary.lines())
    return {
        "repo_id": w["repo_id"],
        "revision": w.get("revision"),
        **{k: v for k, v in vars(summary).items() if isinstance(v, (str, int, float, bool))},
    }


def _mixture_entry(entry: Any) -> dict:
    """A mixture list item: a local dataset folder (repo id and revision from its meta/glam.json) or a ref."""
    if isinstance(entry, dict):
        return entry
    from glam_lerobot import provenance

    root = Path(entry)
    meta = provenance.read(root)
    repo_id = meta.get("repo_id") or f"local/{root.name.replace('@', '-')}"
    out = {"repo_id": repo_id, "root": str(root)}
    if meta.get("revision"):
        out["revision"] = meta["revision"]
    return out


def _mixture(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.mixture import check_mixture, parse_mixture, save_mixture

    w = stage.settings
    out = stage.outputs["mixture"]
    data = {
        "name": w.get("name", stage.name),
        "target": [_mixture_entry(e) for e in w["target"]],
        "auxiliary": [_mixture_entry(e) for e in w.get("auxiliary") or []],
    }
    ids = [e["repo_id"] for e in data["target"] + data["auxiliary"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(
            f"two datasets of the mixture have the repo id {dup[0]!r}; give them distinct repo_id "
            "when recording or ingesting"
        )
    if w.get("cameras"):
        data["cameras"] = w["cameras"]
    mixture = parse_mixture(data, out)
    rows = check_mixture(mixture)
    tmp = out.with_name(out.name + ".partial")
    save_mixture(mixture, tmp)
    tmp.replace(out)
    for r in rows:
        ctx.console.print(f"  {r['role']:9s} {r['repo_id']}: {r['episodes']} episodes, {r['frames']} frames")
    ctx.console.print(f"wrote {out}")
    return {"datasets": [{k: r[k] for k in ("role", "repo_id", "episodes", "frames")} for r in rows]}


def _train_wm(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model import checkpoint as ckpt
    from glam_lerobot.world_model.train import TrainSettings, train_world_model

    w = dict(stage.settings)
    out = stage.outputs["world_model"]
    mixture = load_mixture(w.pop("mixture"))
    resume = out.exists() and ckpt.latest_checkpoint(out) is not None
    if out.exists() and not resume:
        _clear(out, ctx, "an unfinished run without a checkpoint")
    if resume:
        ctx.console.print(f"resuming from {ckpt.latest_checkpoint(out)}")
    settings = TrainSettings(**w)
    summary = train_world_model(mixture, out, settings, resume=resume)
    _print_lines(ctx, summary.lines())
    return {
        "steps": summary.steps,
        "resumed_from": summary.resumed_from,
        "last": {k: float(v) for k, v in summary.last.items()},
        "seconds": summary.seconds,
        "transitions": summary.transitions,
    }


def _relabel(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model.relabel import relabel

    w = dict(stage.settings)
    out = stage.outputs["output"]
    _clear(out, ctx, "an unfinished relabel: it starts over")
    summary = relabel(
        w.pop("world_model"),
        load_mixture(w.pop("mixture")),
        out,
        command=f"glam-lerobot pipeline (stage {stage.name})",
        **w,
    )
    _print_lines(ctx, summary.lines())
    return {
        "revisions": {k: str(v) for k, v in summary.revisions.items()},
        "merged": str(summary.merged),
        "transitions": summary.transitions,
    }


def _lerobot_exe(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"`{name}` not found next to {sys.executable} or on PATH; is LeRobot installed?")
    return found


def run_logged(cmd: list[str], log: Path, ctx: Context, show: Callable[[str], bool] = lambda _: False) -> None:
    """Run a command, all of its output into `log`; lines for which `show` is true are echoed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    from glam_lerobot.runtime import subprocess_env

    # pinned torch threads: the child's default (one per core) oversubscribes a small CPU (runtime.py)
    env = {**subprocess_env(), "SVT_LOG": os.environ.get("SVT_LOG", "1"), "PYTHONUNBUFFERED": "1"}
    ctx.console.print(f"[dim]$ {' '.join(cmd)}[/]")
    ctx.console.print(f"[dim]  (log: {log})[/]")
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for line in proc.stdout:
                f.write(line)
                if show(line):
                    ctx.console.print(f"  {line.rstrip()[-160:]}", markup=False)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{Path(cmd[0]).name} exited with status {code}; last lines of {log}:\n{tail}")


def _device(value: str | None) -> str:
    if value in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def _cli_args(extra: dict | None) -> list[str]:
    return [f"--{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in (extra or {}).items()]


_STEP_LINE = re.compile(r"step:(\S+) .*?loss:([-0-9.eE+naif]+)")


def _big_number(text: str) -> float:
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12, "Q": 1e15}
    return float(text[:-1]) * scale[text[-1]] if text and text[-1] in scale else float(text)


def policy_losses(log: Path) -> list[dict]:
    """(step, loss) from lerobot-train's log lines (`step:200 smpl:... loss:0.123 ...`); after a resume, steps
    logged again replace the ones logged past the checkpoint by the interrupted run."""
    rows: dict[float, dict] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        m = _STEP_LINE.search(line)
        if m:
            try:
                step = _big_number(m.group(1))
                step = int(step) if step.is_integer() else step
                rows[step] = {"step": step, "loss": float(m.group(2))}
            except ValueError:
                continue
    return [rows[k] for k in sorted(rows)]


def _train_policy(stage: Stage, ctx: Context) -> dict:
    from lerobot.utils.constants import CHECKPOINTS_DIR, PRETRAINED_MODEL_DIR

    from glam_lerobot import provenance

    w = stage.settings
    out = stage.outputs["policy"]
    steps = int(w.get("steps", 1000))
    log = ctx.log_dir / f"{stage.name}.log"
    last = out / CHECKPOINTS_DIR / "last" / PRETRAINED_MODEL_DIR
    if last.exists():  # an interrupted run with a checkpoint: lerobot-train resumes it
        ctx.console.print(f"resuming from {last.parent.resolve()}")
        cmd = [
            _lerobot_exe("lerobot-train"),
            f"--config_path={last / 'train_config.json'}",
            "--resume=true",
            f"--steps={steps}",
        ]
    else:
        _clear(out, ctx, "an unfinished run without a checkpoint")
        if log.exists():
            log.unlink()
        dataset = Path(w["dataset"])
        repo_id = w.get("repo_id") or provenance.read(dataset).get("repo_id") or f"local/{dataset.name}"
        cmd = [
            _lerobot_exe("lerobot-train"),
            f"--policy.type={w.get('policy', 'glam_mip')}",
            f"--dataset.repo_id={repo_id}",
            f"--dataset.root={dataset}",
            "--policy.push_to_hub=false",
            f"--policy.device={_device(w.get('device'))}",
            f"--steps={steps}",
            f"--batch_size={int(w.get('batch_size', 32))}",
            f"--num_workers={int(w.get('num_workers', 1))}",
            f"--seed={int(w.get('seed', 0))}",
            f"--log_freq={int(w.get('log_freq', 50))}",
            f"--save_freq={min(int(w.get('save_freq', steps)), steps)}",
            f"--output_dir={out}",
            "--dataset.video_backend=pyav",
            *_cli_args(w.get("args")),
        ]
    run_logged(cmd, log, ctx, show=lambda line: "step:" in line and "loss:" in line)
    if not last.exists():
        raise RuntimeError(f"lerobot-train finished but wrote no {last}; see {log}")
    losses = policy_losses(log)
    _write_json(out / "losses.json", losses)
    if losses:
        _loss_plot(
            {f"{w.get('policy', 'glam_mip')} policy": losses},
            out / "training_curve.png",
            "policy training (lerobot-train)",
        )
    ctx.console.print(f"wrote {last} (stock LeRobot checkpoint), {out / 'training_curve.png'}")
    return {
        "policy": w.get("policy", "glam_mip"),
        "steps": steps,
        "checkpoint": str(last),
        "last_loss": losses[-1]["loss"] if losses else None,
        "log": str(log),
    }


def _policy_dir(path: Path) -> Path:
    """A lerobot-train output folder, a checkpoint, or a pretrained_model folder -> the pretrained_model folder."""
    path = Path(path)
    for candidate in (path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no LeRobot policy checkpoint (config.json) here or under checkpoints/last")


def _evaluate(stage: Stage, ctx: Context) -> dict:
    w = stage.settings
    out = stage.outputs["eval"]
    episodes = int(w.get("episodes", 10))
    log = ctx.log_dir / f"{stage.name}.log"
    if log.exists():
        log.unlink()
    with _Staged(out, ctx) as tmp:
        cmd = [
            _lerobot_exe("lerobot-eval"),
            f"--policy.path={_policy_dir(w['policy'])}",
            "--env.type=glam_kinova",
            f"--env.task={w['task']}",
            f"--eval.n_episodes={episodes}",
            f"--eval.batch_size={min(int(w.get('batch_size', 1)), episodes)}",
            f"--policy.device={_device(w.get('device'))}",
            f"--seed={int(w.get('seed', 0))}",
            f"--output_dir={tmp}",
        ]
        if w.get("image_size"):
            cmd.append(f"--env.image_size={int(w['image_size'])}")
        if w.get("episode_length"):
            cmd.append(f"--env.episode_length={int(w['episode_length'])}")
        cmd += _cli_args(w.get("args"))
        run_logged(cmd, log, ctx, show=lambda line: "pc_success" in line or "Stepping" in line and "100%" in line)
        info = json.loads((tmp / "eval_info.json").read_text())
    overall = info.get("overall", info.get("aggregated", {}))
    rate = overall.get("pc_success")
    ctx.console.print(
        f"success {rate}% over {overall.get('n_episodes', episodes)} episodes of {w['task']}; wrote {out}"
    )
    return {
        "task": w["task"],
        "episodes": int(overall.get("n_episodes", episodes)),
        "pc_success": rate,
        "avg_sum_reward": overall.get("avg_sum_reward"),
        "eval_info": str(out / "eval_info.json"),
    }


def _transfer(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.world_model.transfer import transfer

    w = stage.settings
    roots = w["datasets"] if isinstance(w["datasets"], list) else [w["datasets"]]
    episodes = w.get("episodes")
    if isinstance(episodes, int):
        episodes = list(range(episodes))
    with _Staged(stage.outputs["output"], ctx) as tmp:
        report = transfer(w["world_model"], roots, episodes, tmp, image_size=w.get("image_size"))
        report.output = stage.outputs["output"]
        _print_lines(ctx, report.lines())
    return {"per_source": report.per_source}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _loss_plot(curves: dict[str, list[dict]], png: Path, title: str, ax=None) -> None:
    plt = _pyplot()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in curves.items():
        ax.plot([r["step"] for r in rows], [max(r["loss"], 1e-8) for r in rows], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    if own:
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        plt.close(fig)


def _plot(stage: Stage, ctx: Context) -> dict:
    """training_curves.png (world model and policies side by side), latents.png (PCA by source), success.png."""
    from glam_lerobot.world_model.plots import plot_dataset_latents

    w = stage.settings
    written = {}
    with _Staged(stage.outputs["output"], ctx) as tmp:
        tmp.mkdir()
        wm = w.get("world_models") or {}
        pol = w.get("policies") or {}
        if wm or pol:
            plt = _pyplot()
            fig, axes = plt.subplots(1, 2 if wm and pol else 1, figsize=(12 if wm and pol else 6, 4), squeeze=False)
            col = 0
            if wm:
                curves = {}
                for label, folder in wm.items():
                    lines = (Path(folder) / "losses.jsonl").read_text().splitlines()
                    curves[label] = [json.loads(line) for line in lines if line.strip()]
                _loss_plot(curves, tmp, "world model (total loss)", ax=axes[0][col])
                col += 1
            if pol:
                curves = {
                    label: json.loads((Path(folder) / "losses.json").read_text()) for label, folder in pol.items()
                }
                _loss_plot(curves, tmp, "policy (lerobot-train loss)", ax=axes[0][col])
            fig.tight_layout()
            fig.savefig(tmp / "training_curves.png", dpi=110)
            plt.close(fig)
            written["training_curves"] = "training_curves.png"
        if w.get("latents"):
            roots = w["latents"] if isinstance(w["latents"], list) else [w["latents"]]
            out = plot_dataset_latents([Path(r) for r in roots], tmp / "latents.png")
            written["latents"] = "latents.png"
            written["latent_counts"] = out["counts"]
        evals = w.get("evals") or {}
        if evals:
            rates = {
                label: json.loads((Path(d) / "eval_info.json").read_text()).get("overall", {}).get("pc_success", 0)
                for label, d in evals.items()
            }
            plt = _pyplot()
            fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(rates), 3.5))
            ax.bar(list(rates), list(rates.values()), color="tab:blue")
            ax.set_ylim(0, 100)
            ax.set_ylabel("success rate (%)")
            ax.set_title("closed-loop success in the simulator")
            for i, v in enumerate(rates.values()):
                ax.text(i, v + 2, f"{v:.0f}%", ha="center")
            fig.tight_layout()
            fig.savefig(tmp / "success.png", dpi=110)
            plt.close(fig)
            written["success"] = "success.png"
    out = stage.outputs["output"]
    files = {k: str(out / v) for k, v in written.items() if isinstance(v, str)}
    for v in files.values():
        ctx.console.print(f"wrote {v}")
    for label, folder in (w.get("world_models") or {}).items():  # train-wm's own plot: every loss term
        if (Path(folder) / "training_curve.png").is_file():
            files[f"world model {label}, every loss term"] = str(Path(folder) / "training_curve.png")
    return {"files": files}


def _summary(stage: Stage, ctx: Context) -> dict:
    """summary.md + summary.json: success rates, what each stage wrote where, and what full scale changes."""
    recipe, w = ctx.recipe, stage.settings
    rows = []
    for s in recipe.stages:
        if s.name == stage.name:
            break
        marker = recipe.marker(s)
        saved = json.loads(marker.read_text()) if marker.exists() else {}
        rows.append(
            {
                "stage": s.name,
                "run": s.kind,
                "seconds": round(saved.get("seconds", 0.0), 1),
                "cpu_seconds": round(saved.get("cpu_seconds", 0.0), 1),
                "outputs": {k: str(v) for k, v in s.outputs.items()},
                "info": saved.get("info", {}),
            }
        )
    success = {r["stage"]: r["info"].get("pc_success") for r in rows if r["run"] == "evaluate"}
    transfer = {r["stage"]: r["info"].get("per_source") for r in rows if r["run"] == "transfer"}
    plots = {k: v for r in rows if r["run"] == "plot" for k, v in r["info"].get("files", {}).items()}
    lines = [f"# Pipeline {recipe.name}", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    if success:
        lines += ["## Closed-loop success in the simulator", ""]
        for name, rate in success.items():
            info = next(r["info"] for r in rows if r["stage"] == name)
            lines.append(f"- {name}: {rate}% of {info.get('episodes')} episodes ({info.get('task')})")
        lines.append("")
    if transfer:
        lines += ["## Cross-source transfer (open-loop replay of decoded latents on the Kinova)", ""]
        for name, per in transfer.items():
            for src, s in (per or {}).items():
                lines.append(
                    f"- {name}: {src}: success {s.get('successes')}/{s.get('episodes')}, "
                    f"object error {s.get('object_error_mean', float('nan')):.3f} m"
                )
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"- {k}: {v}" for k, v in plots.items()] + [""]
    lines += ["## Stages", "", "| stage | run | seconds | CPU seconds | wrote |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['run']} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} | "
            + ", ".join(f"{k}: `{v}`" for k, v in r["outputs"].items())
            + " |"
        )
    total, cpu = sum(r["seconds"] for r in rows), sum(r["cpu_seconds"] for r in rows)
    lines += [
        "",
        f"Total: {total / 60:.1f} min wall clock, {cpu / 60:.1f} min of CPU (stages skipped on a later run "
        "count with the run that did them).",
    ]
    if recipe.full_scale or w.get("full_scale"):
        lines += [
            "",
            "## What a full-scale run does differently",
            "",
            (w.get("full_scale") or recipe.full_scale).strip(),
        ]
    text = "\n".join(lines) + "\n"
    with _Staged(stage.outputs["output"], ctx) as tmp:
        tmp.mkdir()
        (tmp / "summary.md").write_text(text)
        _write_json(
            tmp / "summary.json",
            {
                "recipe": str(recipe.path),
                "workdir": str(recipe.workdir),
                "success": success,
                "transfer": transfer,
                "plots": plots,
                "stages": rows,
                "seconds": total,
                "cpu_seconds": cpu,
            },
        )
    ctx.console.print(text, markup=False)  # as written: full paths, nothing elided
    ctx.console.print(f"wrote {stage.outputs['output'] / 'summary.md'} and summary.json")
    return {"success": success, "summary": str(stage.outputs["output"] / "summary.md")}


def _relabel_outputs(out: dict[str, Path]) -> dict[str, Path]:
    return {"merged": out["output"] / "mixture", "datasets": out["output"] / "datasets"}


def _policy_outputs(out: dict[str, Path]) -> dict[str, Path]:
    return {"checkpoint": out["policy"] / "checkpoints" / "last" / "pretrained_model"}


KINDS: dict[str, Kind] = {
    "record": Kind(
        _record,
        ("embodiment", "task", "episodes", "seed", "image_size", "masks", "workers", "repo_id"),
        required=("embodiment", "task", "episodes"),
        outputs=("dataset",),
        help="sim record: scripted-expert episodes in MuJoCo -> a LeRobot dataset",
    ),
    "ingest": Kind(
        _ingest,
        ("format", "paths", "repo_id", "options", "workers", "skip_bad"),
        required=("format", "paths", "repo_id"),
        inputs=("paths",),
        outputs=("dataset",),
        help="raw recordings (umi zarr, rosbag, ...) -> a LeRobot dataset; options go to the reader's plan()",
    ),
    "masks": Kind(
        _masks,
        (
            "dataset",
            "backend",
            "model",
            "prompt",
            "objects",
            "revision",
            "cameras",
            "batch",
            "conf",
            "device",
            "imgsz",
            "tracker",
        ),
        required=("dataset",),
        inputs=("dataset",),
        outputs=("dataset",),
        help="masks add: a new revision with object-mask columns",
    ),
    "push": Kind(
        _push,
        ("path", "repo_id", "revision", "private"),
        required=("path", "repo_id"),
        inputs=("path",),
        help="push a dataset or world model to the Hub (HF_ENDPOINT, HF_TOKEN)",
    ),
    "mixture": Kind(
        _mixture,
        ("name", "target", "auxiliary", "cameras"),
        required=("target",),
        inputs=("target", "auxiliary"),
        outputs=("mixture",),
        help="a mixture file: local dataset folders or {repo_id, revision} as target / auxiliary",
    ),
    "train_wm": Kind(
        _train_wm,
        (
            "mixture",
            "input",
            "steps",
            "batch_size",
            "latent_dim",
            "seed",
            "lr",
            "align_weight",
            "kl_weight",
            "image_size",
            "save_every",
            "log_every",
            "threads",
        ),
        required=("mixture",),
        inputs=("mixture",),
        outputs=("world_model",),
        help="train-wm: the GLAM world model (resumes from its last checkpoint)",
    ),
    "relabel": Kind(
        _relabel,
        ("world_model", "mixture", "revision", "horizon", "merged", "workers"),
        required=("world_model", "mixture"),
        inputs=("world_model", "mixture"),
        outputs=("output",),
        derived=_relabel_outputs,
        help="relabel: latent-action revisions (output/datasets) and the merged mixture (output/mixture)",
    ),
    "train_policy": Kind(
        _train_policy,
        (
            "dataset",
            "policy",
            "steps",
            "batch_size",
            "seed",
            "device",
            "save_freq",
            "log_freq",
            "num_workers",
            "repo_id",
            "args",
        ),
        required=("dataset",),
        inputs=("dataset",),
        outputs=("policy",),
        derived=_policy_outputs,
        help="stock lerobot-train --policy.type=glam_mip|mip (args: extra --key=value)",
    ),
    "evaluate": Kind(
        _evaluate,
        ("policy", "task", "episodes", "batch_size", "image_size", "episode_length", "seed", "device", "args"),
        required=("policy", "task"),
        inputs=("policy",),
        outputs=("eval",),
        help="stock lerobot-eval --env.type=glam_kinova: success rate in the simulator",
    ),
    "transfer": Kind(
        _transfer,
        ("world_model", "datasets", "episodes", "image_size"),
        required=("world_model", "datasets"),
        inputs=("world_model", "datasets"),
        outputs=("output",),
        help="transfer: replay decoded latents of other sources on the simulated Kinova",
    ),
    "plot": Kind(
        _plot,
        ("world_models", "policies", "latents", "evals"),
        inputs=("world_models", "policies", "latents", "evals"),
        outputs=("output",),
        help="PNG plots: training curves, latents by source (PCA), success rates",
    ),
    "summary": Kind(
        _summary,
        ("full_scale",),
        outputs=("output",),
        help="summary.md/json: success rates, where every stage wrote, what full scale changes",
    ),
}
