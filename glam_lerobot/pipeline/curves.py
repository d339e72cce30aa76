"""Loss curves: read lerobot-train's log into (step, loss) rows, and plot curves (policy and world model)."""

from __future__ import annotations

import re
from pathlib import Path

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


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_plot(curves: dict[str, list[dict]], png: Path, title: str, ax=None) -> None:
    plt = pyplot()
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
