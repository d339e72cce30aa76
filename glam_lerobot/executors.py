"""Where heavy work runs: datatrove's executors, on this machine (local), a Slurm cluster or a Ray cluster.

A job is cut into tasks ("ranks"), each a function of its rank, and optionally one more task after all of them.
The writer (writing.py): each task writes one shard as a small LeRobot dataset, the last merges them. relabel:
each task labels a share of the episodes, the last writes the revisions. masks add: each task masks a share of
the episodes, the last writes the revision. push: each task pre-uploads a share of the files. datatrove starts
the tasks, marks each finished one (`<logs>/completions/NNNNN`) and skips finished ones when the same command
runs again: that is the resume. What each executor needs:

- local (default): `--workers` processes on this machine (`auto`: one per two cores, 1 for small jobs).
- slurm: a partition and a time limit; one job array for the tasks and a dependent job for the last one. The
  work folder must be on a filesystem the nodes share, and the nodes must run the same environment
  (`--env-command`, default: activate this virtual environment).
- ray: the address of a running cluster (`--ray-address`), or none to start a local instance.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

KINDS = ("local", "slurm", "ray")


@dataclass(frozen=True)
class Executor:
    """How to run a write's shards; the CLI's `--executor` and its options."""

    kind: str = "local"
    tasks: int | None = None  # shards; default: one per SHARD_SIZE episodes (local: one per worker, at least)
    partition: str | None = None  # slurm
    time: str = "04:00:00"  # slurm: limit per task
    cpus_per_task: int = 2  # slurm, ray (one writer keeps about two cores busy)
    gpus_per_task: int = 0  # slurm, ray: relabel uses a GPU when its task has one
    mem_per_cpu_gb: float = 4.0  # slurm, ray
    env_command: str | None = None  # slurm: shell line run before each task [default: activate this venv]
    ray_address: str | None = None  # ray: an existing cluster [default: start a local instance]
    sbatch_args: dict = field(default_factory=dict)  # slurm: anything else for #SBATCH (account, qos, ...)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"--executor must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "slurm" and not self.partition:
            raise ValueError("--executor slurm needs --partition (the Slurm partition the tasks run on)")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"--tasks must be at least 1, got {self.tasks}")

    @property
    def waits(self) -> bool:
        """Whether `run` returns only when every task has finished (Slurm's returns once the jobs are queued)."""
        return self.kind != "slurm"


LOCAL = Executor()


def task_count(executor: Executor, n_jobs: int, workers: int, shard_size: int | None, default_shard: int) -> int:
    """How many shards a new write is cut into. One process writes one shard (merging shards rewrites every
    row); several processes get at least one shard each and at most `shard_size` episodes per shard."""
    if executor.tasks:
        return min(executor.tasks, n_jobs)
    size = shard_size or default_shard
    if executor.kind == "local":
        if workers <= 1 and shard_size is None:
            return 1
        return min(n_jobs, max(workers, math.ceil(n_jobs / size)))
    return math.ceil(n_jobs / size)


def shard_bounds(n_jobs: int, tasks: int) -> list[int]:
    """Contiguous job ranges, one per task, as even as they go: task r holds jobs [b[r], b[r + 1])."""
    return [round(r * n_jobs / tasks) for r in range(tasks + 1)]


def completed(logging_dir: Path) -> set[int]:
    """Ranks datatrove has marked finished."""
    folder = Path(logging_dir) / "completions"
    return {int(p.name) for p in folder.iterdir()} if folder.is_dir() else set()


def logging_dir(executor: Executor, work: Path, slurm_dir: Path) -> Path:
    """Where datatrove keeps a run's logs and completion markers: inside the work folder, except on Slurm, where
    the last job removes that folder while it still writes its own logs (`slurm_dir` stays as the run's record).
    Refuses to go on while the jobs of an earlier Slurm run there are still queued or running."""
    refuse_if_queued(slurm_dir)
    return work / "logs" if executor.waits else slurm_dir


def refuse_if_queued(logging_dir: Path) -> None:
    """A Slurm run's jobs still queued or running (squeue knows them): running the command again would queue the
    same tasks twice, or remove files they are writing."""
    record = Path(logging_dir) / "queued.json"
    if not record.is_file() or not shutil.which("squeue"):
        return
    ids = json.loads(record.read_text())
    alive = subprocess.run(["squeue", "-h", "-o", "%A", "-j", ",".join(ids)], capture_output=True, text=True).stdout
    if alive.split():
        raise FileExistsError(
            f"Slurm jobs {', '.join(ids)} of this run are still queued or running (squeue); wait for them to end, "
            f"or `scancel {' '.join(ids)}` and run the command again"
        )


class RankStep(PipelineStep):
    """A datatrove step that calls `work(rank)`: one task's share of a job (a shard, or the merge)."""

    name = "glam-lerobot"
    type = "write"

    def __init__(self, work: Callable[[int], None], label: str):
        super().__init__()
        self.work, self.name = work, label

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self.work(rank)
        return iter(())


def run(
    executor: Executor,
    shard: Callable[[int], None],
    tasks: int,
    workers: int,
    logging_dir: Path,
    finish: Callable[[int], None] | None = None,
    job_name: str = "glam-lerobot",
) -> list[str]:
    """Run `shard(rank)` for every rank in range(tasks) as datatrove tasks. local and ray return when every task
    has run (empty list), and the caller does what comes after them itself; slurm queues the tasks and `finish(0)`
    as a job that waits for them, and returns the two job ids."""
    from loguru import logger

    job_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", job_name).strip("-")  # "recording kinova/lift": a Slurm job name
    steps = [RankStep(shard, f"{job_name}: task")]

    logging_dir = Path(logging_dir)
    if executor.kind == "local":
        import multiprocess

        # datatrove's task queue lives in a Manager process started with the default method, fork, which can
        # deadlock a process that has threads (ours: encoders, decoders, the prefetching producer); a fork
        # server is started once, single-threaded, and forks each Manager cheaply
        multiprocess.set_start_method("forkserver", force=True)
        logger.disable("datatrove")  # its per-task banners and stats tables would bury the progress bar
        try:
            _quiet_local(steps, tasks, min(workers, tasks), logging_dir).run()
        finally:
            logger.enable("datatrove")
        return []
    if executor.kind == "ray":
        import ray
        from datatrove.executor.ray import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(address=executor.ray_address, include_dashboard=False, log_to_driver=False)
        common = {
            "cpus_per_task": executor.cpus_per_task,
            "gpus_per_task": executor.gpus_per_task,
            "mem_per_cpu_gb": executor.mem_per_cpu_gb,
        }
        RayPipelineExecutor(steps, tasks=tasks, logging_dir=str(logging_dir), **common).run()
        return []
    if finish is None:
        raise ValueError("a Slurm run needs `finish`: what runs once every task has")
    from datatrove.executor.slurm import SlurmPipelineExecutor

    common = {
        "time": executor.time,
        "partition": executor.partition,
        "cpus_per_task": executor.cpus_per_task,
        "mem_per_cpu_gb": max(1, math.ceil(executor.mem_per_cpu_gb)),
        "env_command": executor.env_command or _activate_this_environment(),
        "sbatch_args": dict(executor.sbatch_args),
        "qos": None,  # the cluster's default
        "mail_type": "NONE",
        # one task per job, on one node: the batch script runs it itself. Through `srun` the batch script was
        # seen to end (exit 0) while its step still ran, which cancels the step (about 1 run in 4 on the test
        # cluster, always the merge job)
        "with_srun": False,
    }
    shards = SlurmPipelineExecutor(
        steps,
        tasks=tasks,
        job_name=f"{job_name}-shards",
        logging_dir=str(logging_dir),
        gpus_per_task=executor.gpus_per_task,
        **common,
    )
    merge = SlurmPipelineExecutor(
        [RankStep(finish, f"{job_name}: after every task")],
        tasks=1,
        job_name=f"{job_name}-merge",
        logging_dir=str(logging_dir / "finish"),
        depends=shards,
        **common,
    )
    merge.run()  # queues the shards first (its dependency), then itself with --dependency=afterok:<shards>
    ids = [str(shards.job_id), str(merge.job_id)]
    (logging_dir / "queued.json").write_text(json.dumps(ids))  # for refuse_if_queued
    return ids


class QuietLocal(LocalPipelineExecutor):
    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        # datatrove prints the logs of local rank 0 at INFO; the progress bar says what they would
        return super()._run_for_rank(rank, local_rank + 1, node_rank)


def _quiet_local(steps: list, tasks: int, workers: int, logging_dir: Path) -> QuietLocal:
    # spawn, not fork: MuJoCo GL contexts and torch's threads do not survive a fork
    return QuietLocal(steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), start_method="spawn")


def _activate_this_environment() -> str:
    """The shell line that gives a Slurm task this process's Python environment."""
    activate = Path(sys.prefix) / "bin" / "activate"
    if activate.is_file():
        return f"source {activate}"
    return f"export PATH={Path(sys.executable).parent}:$PATH"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
