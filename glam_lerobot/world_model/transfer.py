"""Cross-source transfer (paper Figures 2 and 5, made quantitative): replay another source's latents on the Kinova.

For each chosen episode of a recorded sim dataset (any embodiment: UMI, Kinova):
1. the IDM encodes its transitions into latents z_0 .. z_T-2 (Eq. 7, the same inference relabel uses);
2. the action decoder p(a|z) turns each into a *relative* Kinova action;
3. the simulated Kinova starts from the episode's seed (meta/glam.json "episode_seeds": the same object placement
   for every embodiment) and executes them open-loop in the latents: the latent sequence is fixed in advance;
   only the relative -> absolute conversion (schema.absolute_action) reads the arm's measured joint positions,
   as any executor of relative joint actions does;
4. it reports whether the task succeeds, how far the objects' trajectories stray from the original episode's
   (mean and final position error, metres) and how far the gripper's path does (mean end-effector position
   error, beside the error of an arm that never moves, for scale), per source, plus a PNG strip of the replay
   beside the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glam_lerobot import provenance, schema
from glam_lerobot.world_model import checkpoint as ckpt
from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model.relabel import infer_source_latents


@dataclass
class TransferReport:
    rows: list[dict] = field(default_factory=list)  # one per episode
    per_source: dict[str, dict] = field(default_factory=dict)
    output: Path | None = None

    def lines(self) -> list[str]:
        out = []
        for name, s in self.per_source.items():
            out.append(
                f"{name} ({s['embodiment']}): success {s['successes']}/{s['episodes']} "
                f"({s['success_rate']:.0%}), object error mean {s['object_error_mean']:.3f} m, "
                f"final {s['object_error_final']:.3f} m; end-effector path error {s['ee_error_mean']:.3f} m "
                f"(an arm that stays still: {s['ee_error_if_still']:.3f} m)"
            )
        if self.output:
            out.append(f"wrote {self.output}/transfer.json and one PNG strip per episode")
        return out


def decode_latents_to_kinova(model, latents: np.ndarray, task: str, seed: int, image_size: int | None) -> dict:
    """Decode latents into relative Kinova actions and roll them out from `seed` (sim.replay.rollout_actions)."""
    from glam_lerobot.sim.replay import rollout_actions

    with torch.no_grad():
        rel = model.decode_action(torch.from_numpy(latents).float()).numpy()
    return rollout_actions(task, seed, rel, image_size, relative=True)


def transfer(
    world_model: Path | str,
    roots: list[Path | str],
    episodes: list[int] | None,
    output: Path | str,
    *,
    camera_map: dict[str, str] | None = None,
    strip_camera: str = "overhead",
    image_size: int | None = None,
    progress: bool = True,
) -> TransferReport:
    from rich.progress import Progress

    from glam_lerobot.sim import tasks
    from glam_lerobot.sim.replay import read_episode
    from glam_lerobot.world_model.plots import replay_strip

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model, _ = ckpt.load_world_model(world_model)
    report = TransferReport(output=output)
    for root in map(Path, roots):
        meta = provenance.read(root)
        if "episode_seeds" not in meta or "task" not in meta:
            raise ValueError(
                f"{root}/meta/glam.json: no 'task'/'episode_seeds': transfer replays simulated "
                "episodes from their seed (record them with `glam-lerobot sim record`)"
            )
        task, embodiment, seeds = meta["task"], meta.get("embodiment", "?"), meta["episode_seeds"]
        name = meta.get("repo_id", root.name)
        # role "auxiliary": only observations are needed, whatever the source
        source = wm_data.load_source(
            root, name, "auxiliary", meta.get("revision"), model.config.input, camera_map, progress
        )
        latents, _ = infer_source_latents(model, source)
        bounds = {ep: (a, b) for ep, a, b in source.episode_bounds()}
        chosen = episodes if episodes is not None else sorted(bounds)
        bad = [e for e in chosen if e not in bounds or e >= len(seeds)]
        if bad:
            raise ValueError(f"{root}: episode(s) {bad} not in the dataset (it has {len(bounds)} episodes)")
        size = image_size or int(next(iter(source.images.values())).shape[1])
        rgb = wm_data.load_source(root, name, "auxiliary", None, "rgb", camera_map, False).images
        rows = []
        with Progress(disable=not progress) as bar:
            t = bar.add_task(f"transfer {name}", total=len(chosen))
            for ep in chosen:
                a, b = bounds[ep]
                out = decode_latents_to_kinova(model, latents[a : b - 1], task, int(seeds[ep]), size)
                orig = tasks.object_positions(
                    task, embodiment, read_episode(root, ep, [schema.SIM_QPOS])[schema.SIM_QPOS]
                )
                errs = {k: np.linalg.norm(out["object_positions"][k][: b - a] - orig[k], axis=1) for k in orig}
                ee_err, ee_static = _ee_errors(source.ee_pose[a:b], out["ee_pose"][: b - a])
                row = {
                    "source": name,
                    "embodiment": embodiment,
                    "episode": ep,
                    "seed": int(seeds[ep]),
                    "success": out["success"],
                    "object_error_mean": float(np.mean([e.mean() for e in errs.values()])),
                    "object_error_final": float(np.mean([e[-1] for e in errs.values()])),
                    "ee_error_mean": ee_err,
                    "ee_error_if_still": ee_static,
                }
                cam = strip_camera if strip_camera in rgb else next(iter(rgb))
                png = output / f"{name.replace('/', '_')}_ep{ep:04d}.png"
                replay_strip(
                    np.asarray(rgb[cam][a:b]),
                    out["frames"][cam],
                    png,
                    title=f"{name} episode {ep} ({embodiment}) -> Kinova: {'success' if out['success'] else 'failure'}",
                )
                row["png"] = str(png)
                rows.append(row)
                bar.update(t, advance=1)
        report.rows += rows
        report.per_source[name] = {
            "embodiment": embodiment,
            "task": task,
            "episodes": len(rows),
            "successes": int(sum(r["success"] for r in rows)),
            "success_rate": float(np.mean([r["success"] for r in rows])),
            "object_error_mean": float(np.mean([r["object_error_mean"] for r in rows])),
            "object_error_final": float(np.mean([r["object_error_final"] for r in rows])),
            "ee_error_mean": float(np.mean([r["ee_error_mean"] for r in rows])),
            "ee_error_if_still": float(np.mean([r["ee_error_if_still"] for r in rows])),
        }
    (output / "transfer.json").write_text(
        json.dumps(
            {"world_model": ckpt.identity(world_model), "per_source": report.per_source, "episodes": report.rows},
            indent=2,
        )
        + "\n"
    )
    return report


def _ee_errors(original: np.ndarray, replay: np.ndarray) -> tuple[float, float]:
    """Mean end-effector position error (m) of the replay, and of an arm that stays at its start, per frame."""
    arms = original.shape[1] // schema.EE_POSE_DIM_PER_ARM
    pos = [slice(i * schema.EE_POSE_DIM_PER_ARM, i * schema.EE_POSE_DIM_PER_ARM + 3) for i in range(arms)]
    err = np.mean([np.linalg.norm(replay[:, p] - original[:, p], axis=1).mean() for p in pos])
    still = np.mean([np.linalg.norm(original[:1, p] - original[:, p], axis=1).mean() for p in pos])
    return float(err), float(still)
