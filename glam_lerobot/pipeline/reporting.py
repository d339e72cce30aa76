"""Reporting stages: plots (loss curves, latents, success) and the run's summary."""

from __future__ import annotations

import json
from pathlib import Path

from glam_lerobot.pipeline.context import Context, Staged, write_json
from glam_lerobot.pipeline.curves import loss_plot, pyplot
from glam_lerobot.pipeline.recipe import Stage


def plot_stage(stage: Stage, ctx: Context) -> dict:
    """training_curves.png (world model and policies side by side), latents.png (PCA by source), success.png."""
    from glam_lerobot.world_model.plots import plot_dataset_latents

    w = stage.settings
    written = {}
    with Staged(stage.outputs["output"], ctx) as tmp:
        tmp.mkdir()
        wm = w.get("world_models") or {}
        pol = w.get("policies") or {}
        if wm or pol:
            plt = pyplot()
            fig, axes = plt.subplots(1, 2 if wm and pol else 1, figsize=(12 if wm and pol else 6, 4), squeeze=False)
            col = 0
            if wm:
                curves = {}
                for label, folder in wm.items():
                    lines = (Path(folder) / "losses.jsonl").read_text().splitlines()
                    curves[label] = [json.loads(line) for line in lines if line.strip()]
                loss_plot(curves, tmp, "world model (total loss)", ax=axes[0][col])
                col += 1
            if pol:
                curves = {
                    label: json.loads((Path(folder) / "losses.json").read_text()) for label, folder in pol.items()
                }
                loss_plot(curves, tmp, "policy (lerobot-train loss)", ax=axes[0][col])
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
            plt = pyplot()
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


def wall_clock(rows: list[dict]) -> float:
    """Seconds during which at least one stage ran: stages side by side count once, the gaps between runs not."""
    spans = sorted(r["interval"] for r in rows if r.get("interval"))
    total, end = sum(r["seconds"] for r in rows if not r.get("interval")), float("-inf")
    for a, b in spans:
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def summary_stage(stage: Stage, ctx: Context) -> dict:
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
                "interval": [saved["started_at"], saved["finished_at"]] if "started_at" in saved else None,
                "outputs": {k: str(v) for k, v in s.outputs.items()},
                "info": saved.get("info", {}),
            }
        )
    success = {r["stage"]: r["info"].get("pc_success") for r in rows if r["run"] == "evaluate"}
    transfer = {r["stage"]: r["info"].get("per_source") for r in rows if r["run"] == "transfer"}
    plots = {k: v for r in rows if r["run"] == "plot" for k, v in r["info"].get("files", {}).items()}
    for r in rows:  # transfer's replay strips: the Kinova replaying another source's decoded latents, frame by frame
        if r["run"] == "transfer" and Path(r["outputs"]["output"]).is_dir():
            for png in sorted(Path(r["outputs"]["output"]).glob("*.png")):
                plots[f"replay strip {png.stem}"] = str(png)
    lines = [f"# Pipeline {recipe.name}", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    if success:
        from glam_lerobot.stats import wilson

        lines += ["## Closed-loop success in the simulator", ""]
        for name, rate in success.items():
            info = next(r["info"] for r in rows if r["stage"] == name)
            n = int(info.get("episodes") or 0)
            k = round((rate or 0.0) * n / 100)
            lo, hi = wilson(k, n) if n else (0.0, 0.0)
            lines.append(
                f"- {name}: {k}/{n} episodes of {info.get('task')} ({(rate or 0.0):.0f}%, 95% Wilson [{lo:.0%}, {hi:.0%}])"
            )
        lines.append("")
    gates = [r for r in rows if r["run"] == "train_wm" and r["info"].get("diagnostics")]
    for r in gates:
        verdict = "passed" if r["info"].get("gate_passed") else "FAILED"
        lines += [f"## World-model alignment gate ({r['stage']}): {verdict}", ""]
        lines += [f"    {line}" for entry in r["info"]["diagnostics"] for line in entry.splitlines()] + [""]
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
    total, cpu = wall_clock(rows), sum(r["cpu_seconds"] for r in rows)
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
    with Staged(stage.outputs["output"], ctx) as tmp:
        tmp.mkdir()
        (tmp / "summary.md").write_text(text)
        write_json(
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
