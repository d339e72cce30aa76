"""Stages that make datasets: record, ingest, masks, push, mixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glam_lerobot.pipeline.context import Context, print_lines
from glam_lerobot.pipeline.recipe import Stage


def record_stage(stage: Stage, ctx: Context) -> dict:
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
        workers=w.get("workers", "auto"),
    )
    print_lines(ctx, summary.lines())
    return {"episodes": summary.episodes, "frames": summary.frames, "skipped": len(summary.skipped)}


def ingest_stage(stage: Stage, ctx: Context) -> dict:
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
    repo_id, workers, skip_bad = w.pop("repo_id"), w.pop("workers", "auto"), bool(w.pop("skip_bad", False))
    options = w.pop("options", {}) or {}
    if "image_size" in options and options["image_size"] is not None:
        options["image_size"] = parse_image_size(str(options["image_size"]))
    plan = reader.plan(paths, **options)
    command = f"glam-lerobot pipeline run {ctx.recipe.path} (stage {stage.name})"
    summary = plan.write(stage.outputs["dataset"], repo_id, workers=workers, skip_bad=skip_bad, command=command)
    print_lines(ctx, summary.lines())
    return {"episodes": summary.episodes, "frames": summary.frames, "bad": len(summary.bad)}


def masks_stage(stage: Stage, ctx: Context) -> dict:
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
    print_lines(ctx, summary.lines())
    return {
        "revision": summary.revision,
        "episodes": summary.episodes,
        "frames": summary.frames,
        "empty": summary.empty,
    }


def push_stage(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot import hub

    w = stage.settings
    summary = hub.push(w["path"], w["repo_id"], w.get("revision"), private=w.get("private"))
    print_lines(ctx, summary.lines())
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


def mixture_stage(stage: Stage, ctx: Context) -> dict:
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
