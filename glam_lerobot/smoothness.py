"""Motion smoothness of rollouts (the paper's Appendix B) and a rollout against the expert (its Figure 7).

Both scores read the end-effector speed profile v(t) = |d x_ee / dt| of one rollout (from the traces
`lerobot-eval --env.trace_dir=DIR` leaves, see sim/env.py):

- jerk score (Balasubramanian et al. 2015), as the paper writes it: -ln(T^5 / v_peak^2 * integral of (d2v/dt2)^2 dt)
  over the rollout's duration T; less negative is smoother. (Balasubramanian's dimensionless form of the speed
  profile has T^3; the paper's T^5 is kept so the numbers compare with its Figure 6.)
- FFT score (Mysore et al. 2021): S_m = 2 / (n f_s) * sum_i M_i f_i over the n frequency bins of the speed's
  spectrum (M_i the amplitude of bin i at frequency f_i, f_s the control rate); lower is smoother.

Speeds are finite differences of the pinch position at the control rate; a bimanual rollout is scored per arm and
averaged. Rollouts shorter than 5 steps have no second derivative worth the name and are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glam_lerobot import schema

MIN_STEPS = 5


def ee_speed(ee_pose: np.ndarray, fps: float) -> np.ndarray:
    """(T+1, 10*arms) poses -> (arms, T) end-effector speeds in m/s."""
    arms = ee_pose.shape[1] // schema.EE_POSE_DIM_PER_ARM
    pos = ee_pose.reshape(len(ee_pose), arms, schema.EE_POSE_DIM_PER_ARM)[:, :, :3]
    return (np.linalg.norm(np.diff(pos, axis=0), axis=-1) * fps).T


def jerk_score(v: np.ndarray, fps: float) -> float:
    dt = 1.0 / fps
    duration = len(v) * dt
    d2v = np.gradient(np.gradient(v, dt), dt)
    integral = float(np.sum(d2v**2) * dt)
    peak = float(np.max(np.abs(v)))
    if peak == 0.0 or integral == 0.0:
        return float("nan")  # no motion (or perfectly uniform motion): the score is undefined
    return -float(np.log(abs(duration**5 / peak**2 * integral)))


def fft_score(v: np.ndarray, fps: float) -> float:
    amplitude = np.abs(np.fft.rfft(v)) / len(v)
    freqs = np.fft.rfftfreq(len(v), d=1.0 / fps)
    return float(2.0 / (len(amplitude) * fps) * np.sum(amplitude * freqs))


def scores(trace: dict) -> dict | None:
    """Both scores of one rollout trace (averaged over arms), or None if it is too short."""
    fps = float(trace.get("fps", schema.DEFAULT_FPS))
    speeds = ee_speed(np.asarray(trace["ee_pose"], np.float64), fps)
    if speeds.shape[1] < MIN_STEPS:
        return None
    return {
        "jerk": float(np.nanmean([jerk_score(v, fps) for v in speeds])),
        "fft": float(np.mean([fft_score(v, fps) for v in speeds])),
        "steps": int(speeds.shape[1]),
        "success": bool(trace["success"]),
    }


def read_traces(folder: Path | str) -> list[dict]:
    out = []
    for path in sorted(Path(folder).glob("seed-*.npz")):
        with np.load(path) as z:
            out.append({k: z[k] for k in z.files})
    return out


def pooled(rows: list[dict]) -> dict:
    """Mean and standard deviation of both scores over rollouts' `scores`, for all of them and the successful
    ones (n = 0 where there are none)."""

    def stats(sel: list[dict]) -> dict:
        if not sel:
            return {"n": 0}
        jerk, fft = np.array([r["jerk"] for r in sel], float), np.array([r["fft"] for r in sel], float)
        return {
            "n": len(sel),
            "jerk_mean": float(np.nanmean(jerk)),
            "jerk_std": float(np.nanstd(jerk)),
            "fft_mean": float(fft.mean()),
            "fft_std": float(fft.std()),
        }

    return {"all": stats(rows), "successful": stats([r for r in rows if r["success"]])}


def summarise(folder: Path | str) -> dict:
    """`pooled` over the rollout traces in `folder` (those of MIN_STEPS steps or more)."""
    return pooled([s for s in (scores(t) for t in read_traces(folder)) if s is not None])


def expert_trace(task: str, seed: int) -> dict:
    """The scripted Kinova expert's demonstration from the scene of `seed`: joint states and poses per step."""
    from glam_lerobot.sim.experts import run_expert
    from glam_lerobot.sim.world import SimWorld

    world = SimWorld(task, "kinova")
    states, poses = [], []

    def on_step(w, _action):
        states.append(w.state())
        poses.append(w.ee_pose())

    success = run_expert(world, seed, on_step)
    states.append(world.state())
    poses.append(world.ee_pose())
    return {"state": np.array(states), "ee_pose": np.array(poses), "success": success, "fps": schema.DEFAULT_FPS}


def plot_against_expert(rollouts: dict[str, dict], expert: dict, path: Path | str, title: str) -> None:
    """Figure 7: each joint's trajectory in rollouts of several policies from one unseen scene, and the expert's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    joints = schema.ARM_JOINTS + 1  # 7 joints and the gripper of arm 0
    fig, axes = plt.subplots(2, 4, figsize=(12, 5), sharex=True)
    for j, ax in enumerate(axes.ravel()[:joints]):
        ax.plot(expert["state"][:, j], color="black", lw=2, label="expert (unseen demonstration)")
        for (name, trace), colour in zip(
            rollouts.items(), ("tab:green", "tab:gray", "tab:blue", "tab:red"), strict=False
        ):
            label = f"{name} ({'success' if trace['success'] else 'failure'})"
            ax.plot(np.asarray(trace["state"])[:, j], color=colour, lw=1.2, label=label)
        ax.set_title("gripper" if j == schema.ARM_JOINTS else f"joint {j + 1}", fontsize=9)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("control step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
