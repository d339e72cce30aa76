"""CPU thread settings shared by every process the toolkit starts (and by its policies inside stock lerobot-train).

torch starts one intra-op thread per core. On a small machine whose cores also run DataLoader workers, the
simulator or a second training run, those threads fight over the cores: on 2 shared cores a policy update took
1.6-2.1 s with torch's default and 0.27-0.45 s with one thread, and world-model training was 2.4x faster and
steady with one thread. An explicit OMP_NUM_THREADS always wins over the automatic choice.
"""

from __future__ import annotations

import functools
import os


def usable_cores() -> int:
    """The cores this process may run on (where there is no affinity, as on macOS: all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_cpu_threads() -> int:
    """Threads for one training process: half the cores minus one for the data loader, at least 1."""
    return max(1, (usable_cores() - 1) // 2)


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: `threads`, else $OMP_NUM_THREADS when set, else auto_cpu_threads()."""
    import torch

    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else auto_cpu_threads()
    torch.set_num_threads(threads)
    return threads


def subprocess_env(threads: int | None = None) -> dict[str, str]:
    """os.environ for a child process (lerobot-train, lerobot-eval, workers) with the thread count pinned."""
    env = dict(os.environ)
    n = str(threads or env.get("OMP_NUM_THREADS") or auto_cpu_threads())
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = n
    return env


@functools.cache
def video_backend() -> str:
    """The video decoder for LeRobot datasets: torchcodec (LeRobot's default) when it loads, else pyav.

    torchcodec needs the system FFmpeg libraries (Debian: `apt install ffmpeg`); without them LeRobot prints a
    long traceback and falls back to pyav on its own, so the toolkit asks once and passes the answer."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads libtorchcodec and FFmpeg)
    except Exception:  # ImportError, or RuntimeError when no FFmpeg library loads
        return "pyav"
    return "torchcodec"
