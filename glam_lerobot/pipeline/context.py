"""What a stage function sees while it runs (Context), and the helpers stages share to write outputs safely."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glam_lerobot.pipeline.recipe import Recipe


@dataclass
class Context:
    recipe: Recipe
    console: Any
    log_dir: Path
    progress: bool = True  # progress bars of long stages (off when runs go side by side: benchmark --jobs)
    child_cpu: float = 0.0  # CPU seconds of the child processes run_logged waited for (stages side by side)

    def info(self, name: str) -> dict:
        """The recorded result of an earlier, finished stage (its marker's `info`)."""
        marker = self.recipe.marker(self.recipe.stage(name))
        return json.loads(marker.read_text()).get("info", {}) if marker.exists() else {}


def new_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # long paths and commands stay on one line, copyable


def file_console(f):
    """A console that writes to the open text file `f` (a stage or recipe run beside others)."""
    from rich.console import Console

    return Console(file=f, width=160, highlight=False)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def clear(path: Path, ctx: Context, why: str) -> None:
    """Remove an unfinished output before a stage starts over; only ever inside the workdir."""
    if not path.exists() and not path.is_symlink():
        return
    if not inside(path, ctx.recipe.workdir):
        raise RuntimeError(
            f"{path} exists ({why}) and is outside the workdir {ctx.recipe.workdir}, so the pipeline "
            "will not remove it; remove it yourself or choose another output path"
        )
    ctx.console.print(f"[yellow]removing[/] {path} ({why})")
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


class Staged:
    """Write into `<out>.partial`, rename to `out` when the block finishes without error."""

    def __init__(self, out: Path, ctx: Context):
        self.out, self.ctx = out, ctx
        self.tmp = out.with_name(out.name + ".partial")

    def __enter__(self) -> Path:
        clear(self.out, self.ctx, "left by an unfinished run")
        clear(self.tmp, self.ctx, "left by an unfinished run")
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.tmp.rename(self.out)


def print_lines(ctx: Context, lines: list[str]) -> None:
    for line in lines:
        ctx.console.print(line)
