"""CPU threads: what the toolkit's processes and its policies inside stock lerobot-train use on a CPU."""

from __future__ import annotations

import torch

from glam_lerobot import runtime


def test_threads_follow_omp_num_threads_else_half_the_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert runtime.set_cpu_threads() == 3 and torch.get_num_threads() == 3
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda _pid: set(range(2)))
        assert runtime.auto_cpu_threads() == 1  # 2 cores: one for the update, one for the data loader
        monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda _pid: set(range(16)))
        assert runtime.auto_cpu_threads() == 7
        assert runtime.set_cpu_threads(2) == 2 and torch.get_num_threads() == 2  # an explicit count wins
        env = runtime.subprocess_env(4)
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    finally:
        torch.set_num_threads(before)
