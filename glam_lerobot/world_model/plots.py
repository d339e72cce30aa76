"""PNG figures of the world-model stage: the training curve and the latent actions of every source in 2-D."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CURVE_TERMS = ("loss", "recon", "forward_idm", "forward_enc", "proprio", "action", "align")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curve(losses_jsonl: Path, out_png: Path, diagnostics_jsonl: Path | None = None) -> Path:
    """Every loss term against the step, log scale; with diagnostics, a second panel of the alignment metrics
    on the held-out same-seed pairs (diagnose.py)."""
    rows = [json.loads(line) for line in Path(losses_jsonl).read_text().splitlines() if line.strip()]
    diag = (
        [json.loads(line) for line in Path(diagnostics_jsonl).read_text().splitlines() if line.strip()]
        if diagnostics_jsonl
        else []
    )
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if diag else 1, figsize=(12 if diag else 7, 4), squeeze=False)
    ax = axes[0, 0]
    steps = [r["step"] for r in rows]
    for term in CURVE_TERMS:
        vals = [max(r[term], 1e-8) for r in rows if term in r]
        if len(vals) == len(steps):
            ax.plot(steps, vals, label=term, lw=1.2 if term != "loss" else 2.0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss term")
    ax.set_title("GLAM world model training")
    ax.legend(fontsize=7, ncol=2)
    if diag:
        ax = axes[0, 1]
        dsteps = [r["step"] for r in diag]
        keys = [
            k for k in diag[-1] if k.split("/")[-1] in ("distance_ratio", "retrieval", "image_content", "action_error")
        ]
        for k in keys:
            ax.plot(dsteps, [r.get(k, np.nan) for r in diag], marker=".", label=k)
        ax.axhline(0.1, color="grey", lw=0.8, ls=":")
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("step")
        ax.set_title("alignment on held-out same-seed pairs (gate: ratio <= 0.1, retrieval >= 0.9)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of x (N, d) on its first two principal axes, and the explained variance ratio of each."""
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2 / max((s**2).sum(), 1e-12)
    return centred @ vt[:2].T, var[:2]


def latent_projection(latents: dict[str, np.ndarray], out_png: Path, title: str = "latent actions") -> dict:
    """One scatter of every source's latents in a shared PCA projection, coloured by source."""
    names = list(latents)
    allz = np.concatenate([latents[n] for n in names])
    proj, var = pca_2d(allz)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    start = 0
    for n in names:
        k = len(latents[n])
        ax.scatter(proj[start : start + k, 0], proj[start : start + k, 1], s=4, alpha=0.5, label=f"{n} ({k})")
        start += k
    ax.set_xlabel(f"PC1 ({var[0]:.0%})")
    ax.set_ylabel(f"PC2 ({var[1]:.0%})" if len(var) > 1 else "PC2")
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return {
        "png": str(out_png),
        "explained_variance": [float(v) for v in var],
        "counts": {n: len(latents[n]) for n in names},
    }


def replay_strip(original: np.ndarray, replay: np.ndarray, out_png: Path, title: str = "", n: int = 8) -> Path:
    """Two rows of n frames: the original episode above, the open-loop replay on the Kinova below."""
    plt = _pyplot()
    t_orig = np.linspace(0, len(original) - 1, n).astype(int)
    t_rep = np.linspace(0, len(replay) - 1, n).astype(int)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.2))
    for j in range(n):
        for row, (frames, ts, label) in enumerate(((original, t_orig, "original"), (replay, t_rep, "replay"))):
            ax = axes[row, j]
            ax.imshow(frames[ts[j]])
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if row == 0:
                ax.set_title(f"t={ts[j]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def dataset_latents(roots: list[Path]) -> dict[str, np.ndarray]:
    """{source name: latents (n, d)} from relabelled datasets (a merged mixture dataset is split by source).
    Frames marked latent.is_pad (episode ends: a repeated latent, not a transition) are left out."""
    from glam_lerobot import provenance, schema
    from glam_lerobot.world_model.frames import read_info, read_numeric

    out: dict[str, np.ndarray] = {}
    for root in map(Path, roots):
        feats = read_info(root)["features"]
        if schema.LATENT not in feats:
            raise ValueError(f"{root}: no '{schema.LATENT}' column; run `glam-lerobot relabel` first")
        meta = provenance.read(root)
        cols = [schema.LATENT] + [c for c in (schema.LATENT_IS_PAD, schema.SOURCE) if c in feats]
        num = read_numeric(root, cols)
        keep = num[schema.LATENT_IS_PAD].reshape(-1) == 0 if schema.LATENT_IS_PAD in num else slice(None)
        z = num[schema.LATENT][keep]
        if schema.SOURCE in num:
            src = num[schema.SOURCE].reshape(-1)[keep]
            names = {s["index"]: s["repo_id"] for s in meta.get("sources", [])}
            for i in np.unique(src):
                out[names.get(int(i), f"source {int(i)}")] = z[src == i]
        else:
            out[meta.get("repo_id", root.name)] = z
    return out


def plot_dataset_latents(roots: list[Path], out_png: Path) -> dict:
    return latent_projection(dataset_latents(roots), Path(out_png), title="GLAM latent actions by source (PCA)")
