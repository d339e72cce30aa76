"""Policy stages run with stock LeRobot commands (`lerobot-train`, `lerobot-eval`) as logged subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from glam_lerobot import smoothness
from glam_lerobot.pipeline.context import Context, Staged, clear, write_json
from glam_lerobot.pipeline.curves import loss_plot, policy_losses
from glam_lerobot.pipeline.recipe import Stage
from glam_lerobot.runtime import video_backend


def _lerobot_exe(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"`{name}` not found next to {sys.executable} or on PATH; is LeRobot installed?")
    return found


def run_logged(
    cmd: list[str], log: Path, ctx: Context, show: Callable[[str], bool] = lambda _: False, threads: int | None = None
) -> None:
    """Run a command, all of its output into `log`; lines for which `show` is true are echoed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    from glam_lerobot.runtime import subprocess_env

    # pinned torch threads: the child's default (one per core) oversubscribes a small CPU (runtime.py)
    env = {**subprocess_env(threads), "SVT_LOG": os.environ.get("SVT_LOG", "1"), "PYTHONUNBUFFERED": "1"}
    ctx.console.print(f"[dim]$ {' '.join(cmd)}[/]")
    ctx.console.print(f"[dim]  (log: {log})[/]")
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for line in proc.stdout:
                f.write(line)
                if show(line):
                    ctx.console.print(f"  {line.rstrip()[-160:]}", markup=False)
            _, status, usage = os.wait4(proc.pid, 0)  # wait() and the child's CPU, its reaped workers included
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            ctx.child_cpu += usage.ru_utime + usage.ru_stime
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{Path(cmd[0]).name} exited with status {code}; last lines of {log}:\n{tail}")


def resolve_device(value: str | None = None) -> str:
    """'auto' (or nothing) -> cuda when there is one, else cpu; anything else as given."""
    if value in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def _cli_args(extra: dict | None) -> list[str]:
    return [f"--{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in (extra or {}).items()]


def episodes_of_roles(glam_meta: dict, roles: list[str]) -> list[int]:
    """Episode indices of a merged mixture whose source has one of `roles` (relabel writes the sources' episodes
    in the order meta/glam.json lists them)."""
    sources = glam_meta.get("sources") or []
    if not sources:
        raise ValueError("`roles` needs a merged mixture written by relabel (meta/glam.json lists no sources)")
    out, first = [], 0
    for src in sources:
        n = int(src["episodes"])
        if src.get("role") in roles:
            out += range(first, first + n)
        first += n
    if not out:
        raise ValueError(f"no source of the mixture has a role in {roles}: {[s.get('role') for s in sources]}")
    return out


def train_policy_stage(stage: Stage, ctx: Context) -> dict:
    from lerobot.utils.constants import CHECKPOINTS_DIR, PRETRAINED_MODEL_DIR

    from glam_lerobot import provenance

    w = stage.settings
    out = stage.outputs["policy"]
    steps = int(w.get("steps", 1000))
    log = ctx.log_dir / f"{stage.name}.log"
    last = out / CHECKPOINTS_DIR / "last" / PRETRAINED_MODEL_DIR
    if last.exists():  # an interrupted run with a checkpoint: lerobot-train resumes it
        ctx.console.print(f"resuming from {last.parent.resolve()}")
        cmd = [
            _lerobot_exe("lerobot-train"),
            f"--config_path={last / 'train_config.json'}",
            "--resume=true",
            f"--steps={steps}",
        ]
    else:
        clear(out, ctx, "an unfinished run without a checkpoint")
        if log.exists():
            log.unlink()
        dataset = Path(w["dataset"])
        repo_id = w.get("repo_id") or provenance.read(dataset).get("repo_id") or f"local/{dataset.name}"
        cmd = [
            _lerobot_exe("lerobot-train"),
            f"--policy.type={w.get('policy', 'glam_mip')}",
            f"--dataset.repo_id={repo_id}",
            f"--dataset.root={dataset}",
            "--policy.push_to_hub=false",
            f"--policy.device={resolve_device(w.get('device'))}",
            f"--steps={steps}",
            f"--batch_size={int(w.get('batch_size', 32))}",
            f"--num_workers={int(w.get('num_workers', 1))}",
            f"--seed={int(w.get('seed', 0))}",
            f"--log_freq={int(w.get('log_freq', 50))}",
            f"--save_freq={min(int(w.get('save_freq', steps)), steps)}",
            f"--output_dir={out}",
            f"--dataset.video_backend={video_backend()}",
            *_cli_args(w.get("args")),
        ]
        if w.get("roles"):  # e.g. [target]: the Kinova episodes of a merged mixture alone
            episodes = episodes_of_roles(provenance.read(dataset), list(w["roles"]))
            cmd.append(f"--dataset.episodes=[{','.join(map(str, episodes))}]")
    show = lambda line: "step:" in line and "loss:" in line  # noqa: E731
    run_logged(cmd, log, ctx, show=show, threads=w.get("threads"))
    if not last.exists():
        raise RuntimeError(f"lerobot-train finished but wrote no {last}; see {log}")
    losses = policy_losses(log)
    write_json(out / "losses.json", losses)
    if losses:
        loss_plot(
            {f"{w.get('policy', 'glam_mip')} policy": losses},
            out / "training_curve.png",
            "policy training (lerobot-train)",
        )
    ctx.console.print(f"wrote {last} (stock LeRobot checkpoint), {out / 'training_curve.png'}")
    return {
        "policy": w.get("policy", "glam_mip"),
        "steps": steps,
        "checkpoint": str(last),
        "last_loss": losses[-1]["loss"] if losses else None,
        "log": str(log),
    }


def policy_dir(path: Path) -> Path:
    """A lerobot-train output folder, a checkpoint, or a pretrained_model folder -> the pretrained_model folder."""
    path = Path(path)
    for candidate in (path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no LeRobot policy checkpoint (config.json) here or under checkpoints/last")


def evaluate_stage(stage: Stage, ctx: Context) -> dict:
    w = stage.settings
    out = stage.outputs["eval"]
    episodes = int(w.get("episodes", 10))
    log = ctx.log_dir / f"{stage.name}.log"
    if log.exists():
        log.unlink()
    with Staged(out, ctx) as tmp:
        cmd = [
            _lerobot_exe("lerobot-eval"),
            f"--policy.path={policy_dir(w['policy'])}",
            "--env.type=glam_kinova",
            f"--env.task={w['task']}",
            f"--eval.n_episodes={episodes}",
            f"--eval.batch_size={min(int(w.get('batch_size', 1)), episodes)}",
            f"--policy.device={resolve_device(w.get('device'))}",
            f"--seed={int(w.get('seed', 0))}",
            f"--output_dir={tmp}",
            f"--env.trace_dir={tmp / 'traces'}",  # each rollout's poses and joints: smoothness.py
        ]
        if w.get("image_size"):
            cmd.append(f"--env.image_size={int(w['image_size'])}")
        if w.get("episode_length"):
            cmd.append(f"--env.episode_length={int(w['episode_length'])}")
        cmd += _cli_args(w.get("args"))
        show = lambda line: "pc_success" in line or "Stepping" in line and "100%" in line  # noqa: E731
        run_logged(cmd, log, ctx, show=show, threads=w.get("threads"))
        info = json.loads((tmp / "eval_info.json").read_text())
        motion = smoothness.summarise(tmp / "traces")
    overall = info.get("overall", info.get("aggregated", {}))
    rate = overall.get("pc_success")
    ctx.console.print(
        f"success {rate}% over {overall.get('n_episodes', episodes)} episodes of {w['task']}; wrote {out}"
    )
    return {
        "task": w["task"],
        "episodes": int(overall.get("n_episodes", episodes)),
        "pc_success": rate,
        "avg_sum_reward": overall.get("avg_sum_reward"),
        "eval_info": str(out / "eval_info.json"),
        "smoothness": motion,  # Appendix B's scores of the end-effector speed, over the rollouts
        "traces": str(out / "traces"),
    }
