"""World-model stages: train_wm, relabel, transfer."""

from __future__ import annotations

from glam_lerobot.pipeline.context import Context, Staged, clear, print_lines
from glam_lerobot.pipeline.recipe import Stage


def train_wm_stage(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model import checkpoint as ckpt
    from glam_lerobot.world_model.train import TrainSettings, train_world_model

    w = dict(stage.settings)
    out = stage.outputs["world_model"]
    mixture = load_mixture(w.pop("mixture"))
    resume = out.exists() and ckpt.latest_checkpoint(out) is not None
    if out.exists() and not resume:
        clear(out, ctx, "an unfinished run without a checkpoint")
    if resume:
        ctx.console.print(f"resuming from {ckpt.latest_checkpoint(out)}")
    settings = TrainSettings(**w)
    summary = train_world_model(mixture, out, settings, resume=resume, progress=ctx.progress)
    print_lines(ctx, summary.lines())
    return {
        "steps": summary.steps,
        "resumed_from": summary.resumed_from,
        "last": {k: float(v) for k, v in summary.last.items()},
        "seconds": summary.seconds,
        "transitions": summary.transitions,
        "samples_per_second": summary.samples_per_second,
        "gate_passed": summary.gate_passed,  # None without held-out pairs (diagnose_target / diagnose_aux)
        "diagnostics": summary.diagnostics,
    }


def relabel_stage(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model.relabel import relabel

    w = dict(stage.settings)
    out = stage.outputs["output"]
    clear(out, ctx, "an unfinished relabel: it starts over")
    summary = relabel(
        w.pop("world_model"),
        load_mixture(w.pop("mixture")),
        out,
        command=f"glam-lerobot pipeline (stage {stage.name})",
        progress=ctx.progress,
        **w,
    )
    print_lines(ctx, summary.lines())
    return {
        "revisions": {k: str(v) for k, v in summary.revisions.items()},
        "merged": str(summary.merged),
        "transitions": summary.transitions,
    }


def transfer_stage(stage: Stage, ctx: Context) -> dict:
    from glam_lerobot.world_model.transfer import transfer

    w = stage.settings
    roots = w["datasets"] if isinstance(w["datasets"], list) else [w["datasets"]]
    episodes = w.get("episodes")
    if isinstance(episodes, int):
        episodes = list(range(episodes))
    with Staged(stage.outputs["output"], ctx) as tmp:
        report = transfer(w["world_model"], roots, episodes, tmp, image_size=w.get("image_size"))
        report.output = stage.outputs["output"]
        print_lines(ctx, report.lines())
    return {"per_source": report.per_source}
