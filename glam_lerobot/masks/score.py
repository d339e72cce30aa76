"""`glam-lerobot masks score`: how well a segmentation model finds the objects, against ground truth.

Ground truth is the dataset's own mask columns when it has them (recorded with `sim record --masks`, or a
`masks add --backend groundtruth` revision), else masks re-rendered by MuJoCo from its `sim.qpos` column. The
model runs exactly as `masks add` would run it (same tracking), on the same frames. Reported per task and camera:
mean IoU over frames (a frame where both masks are empty counts 1), frames where the model found nothing, and
frames where the truth is empty. A PNG panel shows sample frames with the predicted and the true mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glam_lerobot import provenance, schema
from glam_lerobot.masks import columns, episodes
from glam_lerobot.masks.tracking import mask_iou


def stored_masks(ds, ep: int, camera: str) -> np.ndarray:
    """(T, H, W) bool from a dataset's mask column."""
    lo, hi = episodes.episode_range(ds, ep)
    return np.stack([columns.from_image(im) for im in ds.hf_dataset.with_format(None)[lo:hi][schema.mask_key(camera)]])


def score_masks(
    roots: list[Path | str],
    model: str,
    *,
    prompt: str | None = None,
    objects: list[str] | None = None,
    gt_objects: list[str] | None = None,
    cameras: list[str] | None = None,
    max_episodes: int | None = None,
    panel: Path | str | None = None,
    panel_frames: int = 4,
    batch: int = 16,
    conf: float = 0.25,
    device: str | None = None,
    imgsz: int | None = None,
    tracker: str | None = "bytetrack.yaml",
) -> list[dict[str, Any]]:
    """One row per (dataset, camera): task, camera, frames, mean_iou, pred_empty, true_empty. Writes `panel`."""
    from glam_lerobot.masks.add import make_masker
    from glam_lerobot.masks.groundtruth import GroundTruthMasker, require_sim_columns

    rows, samples = [], []
    for root in map(Path, roots):
        ds = episodes.open_dataset(root)
        glam = provenance.read(root)
        cams = list(cameras) if cameras else episodes.cameras_of(ds)
        have_cols = all(schema.mask_key(c) in ds.meta.features for c in cams)
        truth_src = None
        if not have_cols:
            require_sim_columns(ds.meta.features, root)
            truth_src = GroundTruthMasker(
                glam.get("task"), glam.get("embodiment"), gt_objects, episodes.image_size(ds, cams[0]), cams
            )
        masker, _ = make_masker(
            "ultralytics",
            ds,
            glam,
            model=model,
            prompt=prompt,
            objects=objects,
            cameras=cams,
            batch=batch,
            conf=conf,
            device=device,
            imgsz=imgsz,
            tracker=tracker,
        )
        n_eps = ds.meta.total_episodes if max_episodes is None else min(max_episodes, ds.meta.total_episodes)
        ious = {c: [] for c in cams}
        pred_empty, true_empty = dict.fromkeys(cams, 0), dict.fromkeys(cams, 0)
        for ep in range(n_eps):
            truth = (
                truth_src.mask_episode(episodes.column(ds, ep, schema.SIM_QPOS))
                if truth_src
                else {c: stored_masks(ds, ep, c) for c in cams}
            )
            for cam in cams:
                frames = episodes.camera_frames(ds, ep, cam)
                pred = masker.mask_episode(frames)
                ious[cam] += [mask_iou(p, t) for p, t in zip(pred, truth[cam], strict=True)]
                pred_empty[cam] += int((~pred.reshape(len(pred), -1).any(1)).sum())
                true_empty[cam] += int((~truth[cam].reshape(len(pred), -1).any(1)).sum())
                if ep == 0:
                    for t in np.linspace(0, len(frames) - 1, min(panel_frames, len(frames))).astype(int):
                        samples.append(
                            (f"{glam.get('task', root.name)} {cam} ep{ep} t{t}", frames[t], pred[t], truth[cam][t])
                        )
        for cam in cams:
            rows.append(
                {
                    "dataset": str(root),
                    "task": glam.get("task"),
                    "camera": cam,
                    "frames": len(ious[cam]),
                    "mean_iou": float(np.mean(ious[cam])) if ious[cam] else float("nan"),
                    "pred_empty": pred_empty[cam],
                    "true_empty": true_empty[cam],
                    "truth": "mask columns" if have_cols else "rendered from sim.qpos",
                }
            )
    if panel is not None:
        write_panel(samples, Path(panel), title=f"{model}: frame, predicted, true")
    return rows


def write_panel(samples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str = "") -> Path:
    """PNG grid: one row per sample, columns = frame, predicted mask over the frame, true mask over the frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(samples))
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n + 0.4), squeeze=False)
    for row, (label, frame, pred, true) in zip(axes[: len(samples)], samples, strict=True):  # none: one empty row
        for ax, img, name in zip(
            row,
            (frame, _overlay(frame, pred, (255, 40, 40)), _overlay(frame, true, (40, 220, 40))),
            ("frame", f"predicted (IoU {mask_iou(pred, true):.2f})", "true"),
            strict=True,
        ):
            ax.imshow(img)
            ax.set_title(name, fontsize=7)
            ax.axis("off")
        row[0].text(-2, frame.shape[0] / 2, label, fontsize=6, rotation=90, ha="right", va="center")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _overlay(frame: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = frame.astype(np.float32).copy()
    out[mask] = 0.4 * out[mask] + 0.6 * np.array(color, np.float32)
    return out.astype(np.uint8)
