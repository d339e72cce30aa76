"""The recipe language: YAML stages, `${...}` variables and references, and the checks made before anything runs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from glam_lerobot.pipeline.context import Context

MARKERS = ".pipeline"  # inside the workdir: one completion marker per stage
_VAR = re.compile(r"\$\{([^}]*)\}")


class RecipeError(ValueError):
    """A recipe that cannot run; raised before any stage starts. The message names the file, stage and field."""


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
    jobs: int = 1  # stages at most at once: subprocess kinds whose inputs are ready run side by side (runner.py)

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
    # its work is a child process (lerobot-train, lerobot-eval), so it may run beside other stages (recipe `jobs`)
    subprocess: bool = False


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
    package = Path(__file__).resolve().parents[1]  # glam_lerobot/: the repo's pipelines/ or a wheel's copy
    return [d for d in (package.parent / "pipelines", package / "pipelines") if d.is_dir()]


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
    from glam_lerobot.pipeline.stages import KINDS  # the table imports every stage module: loaded on first use

    where = f"recipe {path}" if path else "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping with name, vars, stages")
    unknown = set(data) - {"name", "description", "vars", "stages", "full_scale", "jobs"}
    if unknown:
        raise RecipeError(
            f"{where}: unknown field(s) {sorted(unknown)} (allowed: name, description, vars, stages, full_scale, jobs)"
        )
    jobs = data.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise RecipeError(f"{where}: 'jobs' must be a whole number >= 1 (stages at most at once), not {jobs!r}")
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
        jobs=jobs,
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
