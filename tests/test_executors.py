"""Where the shards of a write run: datatrove's local, Slurm and Ray executors all write the same dataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from test_writing import _assert_same_dataset, _finished

from glam_lerobot import synthetic
from glam_lerobot.executors import Executor
from glam_lerobot.writing import write_dataset

JOBS = [synthetic.job(i, length=5 + i) for i in range(5)]


def _write(root, jobs=JOBS, **kw):
    return write_dataset(root, "me/x", 10, synthetic.features(), jobs, synthetic.produce, **kw)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "ds"
    assert _write(root).tasks == 1  # one process, one shard: nothing to merge
    return root


@pytest.mark.parametrize(("tasks", "workers"), [(2, 1), (3, 2)])
def test_the_local_executor_with_any_task_count_writes_the_one_process_dataset(tmp_path, one_process, tasks, workers):
    summary = _write(tmp_path / "ds", workers=workers, executor=Executor(tasks=tasks))
    assert (summary.tasks, summary.episodes) == (tasks, len(JOBS))
    _assert_same_dataset(tmp_path / "ds", one_process)


def test_a_rerun_with_another_task_count_is_refused_not_mixed(tmp_path):
    jobs = [*JOBS[:4], synthetic.job(4, corrupt="nan")]
    with pytest.raises(ValueError, match="NaN"):
        _write(tmp_path / "ds", jobs, executor=Executor(tasks=2))
    with pytest.raises(FileExistsError, match="planned as 2 tasks, not 3: rerun with --tasks 2"):
        _write(tmp_path / "ds", jobs, executor=Executor(tasks=3))


def test_a_killed_worker_stops_the_write_with_a_resume_hint_and_the_resumed_dataset_is_whole(tmp_path, one_process):
    """kill -9 of the worker writing shard 1 while shard 0 is done: the command stops (no hang), says how to
    resume, and the rerun (another worker count) writes the same dataset as one uninterrupted process."""
    work, release = tmp_path / "ds.partial", tmp_path / "release"
    jobs = [*JOBS[:3], *({**j, "wait_for": str(release)} for j in JOBS[3:])]  # shard 1 holds at job 3
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_executors import _write
        from glam_lerobot.executors import Executor
        if __name__ == "__main__":
            _write({str(tmp_path / "ds")!r}, {jobs!r}, workers=2, executor=Executor(tasks=2))
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (_done(work) == ["00000"] and (work / "shard-00001.progress").exists()):
        time.sleep(0.2)
    assert _done(work) == ["00000"], "shard 0 did not finish in time"
    pid = int((work / "shard-00001.progress").read_text().split()[0])
    assert pid != run.pid  # a worker process, not the command itself
    os.kill(pid, signal.SIGKILL)
    _, err = run.communicate(timeout=120)  # no hang: the command notices and stops
    assert run.returncode != 0
    assert f"the worker process writing shard 1 (pid {pid}) died" in err and "rerun the same command" in err
    assert not (tmp_path / "ds").exists()

    release.touch()
    summary = _write(tmp_path / "ds", jobs, workers=1)  # the same plan: its 2 tasks, finished one kept
    assert (summary.tasks, summary.resumed_shards, summary.episodes) == (2, 1, len(JOBS))
    _assert_same_dataset(tmp_path / "ds", one_process)


def _done(work):
    return _finished(work) if (work / "logs" / "completions").is_dir() else []


FAKE_SBATCH = """#!{python}
# A one-node stand-in for sbatch: runs each array task of the script now, in order, and answers like sbatch.
import os, re, subprocess, sys
from pathlib import Path
spool = Path({spool!r}); spool.mkdir(exist_ok=True)
job = str(len(list(spool.glob("*.sh"))) + 100)
script = Path(sys.argv[-1]).read_text()
(spool / f"{{job}}.sh").write_text(script)
(spool / f"{{job}}.args").write_text(" ".join(sys.argv[1:-1]))
first, last = map(int, re.search(r"#SBATCH --array=(\\d+)-(\\d+)", script).groups())
env = dict(os.environ, SLURM_JOB_ID=job, SLURM_NODELIST="localhost", RUN_OFFSET="0")
for task in range(first, last + 1):
    subprocess.run(["bash", "-c", script], env=dict(env, SLURM_ARRAY_TASK_ID=str(task)), check=True)
print(f"Submitted batch job {{job}}")
"""
FAKE_SCONTROL = "#!/bin/sh\necho localhost\n"


@pytest.fixture
def stand_in_slurm(tmp_path, monkeypatch):
    """sbatch and scontrol stand-ins on PATH; returns the folder where sbatch keeps each job's script."""
    bin_dir, spool = tmp_path / "bin", tmp_path / "spool"
    bin_dir.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "scontrol": FAKE_SCONTROL}.items():
        (bin_dir / name).write_text(text.format(python=sys.executable, spool=str(spool)))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return spool


def test_the_slurm_executor_queues_a_shard_array_and_a_dependent_merge_that_write_the_same_dataset(
    tmp_path, one_process, stand_in_slurm
):
    """Slurm's own commands are stand-ins (run now, on this machine); the job scripts are datatrove's, as they would
    be queued on a cluster: checked, then run."""
    spool = stand_in_slurm
    slurm = Executor(kind="slurm", partition="cpu", time="01:00:00", tasks=2, cpus_per_task=2)
    summary = _write(tmp_path / "ds", executor=slurm)
    shards, merge = summary.submitted
    assert "queued 2 shard task(s) as Slurm job" in summary.lines()[0]
    script = (spool / f"{shards}.sh").read_text()
    for line in ("--partition=cpu", "--time=01:00:00", "--cpus-per-task=2", "--array=0-1", "launch_pickled_pipeline"):
        assert line in script
    assert f"source {sys.prefix}/bin/activate" in script  # the nodes run this environment
    assert "--array=0-0" in (spool / f"{merge}.sh").read_text()
    assert f"--dependency=afterok:{shards}" in (spool / f"{merge}.args").read_text()
    _assert_same_dataset(tmp_path / "ds", one_process)  # written by the jobs, merged by the dependent one


def test_the_ray_executor_on_a_loopback_instance_writes_the_same_dataset(tmp_path, one_process):
    import ray  # in the dev group: `uv sync` installs it

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        summary = _write(tmp_path / "ds", executor=Executor(kind="ray", tasks=2, cpus_per_task=1))
    finally:
        ray.shutdown()
    assert (summary.tasks, summary.episodes) == (2, len(JOBS))
    _assert_same_dataset(tmp_path / "ds", one_process)


SLURM_CONF = """ClusterName=glam-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A real single-node Slurm (Debian's slurmctld, slurmd and munge: a requirement of the tests, which .ci/run
    installs) on loopback; yields its slurm.conf."""
    import shutil
    import socket

    daemons = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]
    if not all(os.path.exists(d) for d in daemons) or not shutil.which("sbatch"):
        pytest.fail("no Slurm here: `apt-get install slurmctld slurmd slurm-client munge` (as .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd and munged needs root, which CI has (the stand-in Slurm test runs anyway)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, d=d))
    if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode != 0:
        for folder in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
            os.makedirs(folder, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        if not os.path.exists("/etc/munge/munge.key"):
            subprocess.run(["mungekey", "--create"], check=True)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True, start_new_session=True)
    env = dict(os.environ, SLURM_CONF=str(conf))
    # in sessions of their own: nothing of this test's process group (signals, its end) reaches the jobs
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, env=env, start_new_session=True)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env).stdout.strip()
        if state == "idle":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"slurmd did not come up: {(d / 'slurmd.log').read_text()[-2000:]}")
    yield conf
    for daemon in ("slurmd", "slurmctld"):
        pid = d / f"{daemon}.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)


def test_a_real_single_node_slurm_runs_the_shard_array_and_the_merge_job(
    tmp_path, one_process, slurm_cluster, monkeypatch
):
    """The same command on a real Slurm (slurmctld + slurmd on this machine): queued, then written by the jobs."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    slurm = Executor(kind="slurm", partition="cpu", tasks=2, cpus_per_task=1, mem_per_cpu_gb=1)
    summary = _write(tmp_path / "ds", executor=slurm)
    assert len(summary.submitted) == 2 and not (tmp_path / "ds").exists()  # queued: nothing written yet
    with pytest.raises(FileExistsError, match="still queued or running"):  # the same command again, too early
        _write(tmp_path / "ds", executor=slurm)
    # wait for Slurm to finish the jobs, not for a fixed time: on a loaded CI machine they can take minutes
    deadline = time.time() + 900
    while time.time() < deadline:
        queued = subprocess.run(["squeue", "-h", "-o", "%A", "-j", ",".join(summary.submitted)], capture_output=True)
        if not queued.stdout.strip():  # none left (an unknown id is one Slurm has forgotten: finished)
            break
        time.sleep(2)
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "ds.slurm").rglob("*.out")))
    assert (tmp_path / "ds").exists(), f"the Slurm jobs wrote no dataset; their output:\n{logs}"
    _assert_same_dataset(tmp_path / "ds", one_process)
