"""World-model speed on this machine: training samples/s (and the share of a step spent waiting for data), and
relabel transitions/s against decoding the same frames one index at a time through LeRobotDataset.__getitem__.

    uv run python benchmarks/bench_world_model.py [--episodes 20] [--length 50] [--image-size 96] [--steps 30]
        [--batch-size 64] [--threads 1] [--dataset ROOT]

Writes a synthetic target + auxiliary mixture (or uses --dataset, a LeRobot dataset with ee_pose/state/action, as
target) in a temp dir, trains at the defaults of `train-wm` for a few steps, then relabels (inference alone, then
the whole command: revisions and merged mixture). Prints the figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_model_floor(sources, settings, steps: int) -> float:
    """Samples/s of the training step alone: the same model, optimiser and clipping on one batch already in memory."""
    import torch

    from glam_lerobot.world_model.train import build_training

    _, dataset, model, optimizer = build_training(sources, settings)
    batch = dataset.__getitems__(list(range(min(settings.batch_size, len(dataset)))))
    model.train()

    def step():
        loss, _ = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(next(iter(batch.values()))) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--getitem-frames", type=int, default=200, help="frames timed through LeRobotDataset[i]")
    args = ap.parse_args()

    import torch

    from glam_lerobot import synthetic
    from glam_lerobot.mixture import DatasetRef, Mixture
    from glam_lerobot.writing import write_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-wm-"))
    os.environ.setdefault("GLAM_LEROBOT_CACHE", str(tmp / "cache"))
    if args.dataset is None:
        target = tmp / "target"
        write_dataset(
            target,
            "bench/target",
            10,
            synthetic.features(args.image_size, True),
            [synthetic.job(i, args.length, args.image_size) for i in range(args.episodes)],
            synthetic.produce,
            workers=2,
        )
    else:
        target = args.dataset
    aux = tmp / "aux"
    write_dataset(
        aux,
        "bench/aux",
        10,
        synthetic.features(args.image_size, False),
        [synthetic.job(i, args.length, args.image_size, robot=False, seed=3) for i in range(args.episodes)],
        synthetic.produce,
        workers=2,
    )
    mixture = Mixture("bench", [DatasetRef("bench/target", None, target)], [DatasetRef("bench/aux", None, aux)])

    from glam_lerobot.world_model import data as wm_data
    from glam_lerobot.world_model.relabel import infer_source_latents
    from glam_lerobot.world_model.train import TrainSettings, train_world_model

    t = time.perf_counter()
    sources = wm_data.load_mixture_sources(mixture, "rgb", progress=False)
    first_load = time.perf_counter() - t
    frames = sum(len(s) for s in sources)
    t = time.perf_counter()
    sources = wm_data.load_mixture_sources(mixture, "rgb", progress=False)
    cached_load = time.perf_counter() - t

    settings = TrainSettings(
        steps=args.steps, batch_size=args.batch_size, log_every=5, save_every=10**9, threads=args.threads
    )
    train = train_world_model(mixture, tmp / "wm", settings, progress=False, sources=sources)

    floor = bare_model_floor(sources, settings, args.steps)

    from glam_lerobot.world_model.checkpoint import load_world_model

    model, _ = load_world_model(tmp / "wm")
    t = time.perf_counter()
    n = 0
    for s in sources:
        _, pad = infer_source_latents(model, s)
        n += int((pad == 0).sum())
    relabel_s = time.perf_counter() - t
    t = time.perf_counter()  # the frame reads alone: every transition's two frames gathered from the cache
    for s in sources:
        rows = s.transition_rows()
        for i in range(0, len(rows), 256):
            r = rows[i : i + 256]
            wm_data.gather_images(s, np.concatenate([r, r + 1]), model.config.cameras, "rgb", model.config.image_size)
    gather_s = time.perf_counter() - t
    infer_per_transition = max(relabel_s - gather_s, 0.0) / n

    from glam_lerobot.world_model.relabel import relabel

    t = time.perf_counter()  # the command's work end to end: inference, both revisions, the merged mixture
    end_to_end = relabel(tmp / "wm", mixture, tmp / "relabelled", progress=False)
    relabel_e2e_s = time.perf_counter() - t

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bench/aux", root=aux, video_backend="pyav")
    k = min(args.getitem_frames, len(ds))
    t = time.perf_counter()
    for i in range(k):
        ds[i]
    getitem_s = (time.perf_counter() - t) / k
    # relabelling through __getitem__ decodes at least one new frame per transition (frame t+1 reused as t)
    via_getitem = 1.0 / (getitem_s + infer_per_transition)

    print(
        f"machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"data: {frames} frames, {args.image_size}x{args.image_size}, 2 cameras")
    print(
        f"decode into the frame cache (first load): {first_load:.1f} s = {frames / first_load:.0f} frames/s; "
        f"cached load {cached_load:.2f} s"
    )
    print(
        f"training at batch {args.batch_size}: {train.samples_per_second:.1f} samples/s, "
        f"{train.data_wait_share:.1%} of a step waiting for data ({args.steps} steps, {train.seconds:.1f} s)"
    )
    print(
        f"bare model (forward + backward + step on one in-memory batch, same size and threads): {floor:.1f} "
        f"samples/s; training runs at {train.samples_per_second / floor:.0%} of it"
    )
    print(
        f"relabel (IDM means, frames from the cache): {n / relabel_s:.0f} transitions/s, of which frame reads "
        f"{gather_s / relabel_s:.0%} ({2 * n / gather_s:.0f} frames/s from the cache)"
    )
    print(
        f"relabel end to end (revisions and merged mixture written): {end_to_end.transitions / relabel_e2e_s:.0f} "
        f"transitions/s = {end_to_end.transitions / relabel_e2e_s / (n / relabel_s):.0%} of the inference above"
    )
    print(
        f"LeRobotDataset.__getitem__ one index at a time: {1 / getitem_s:.1f} frames/s; the same relabel fed that "
        f"way: {via_getitem:.0f} transitions/s (cache: {n / relabel_s / via_getitem:.1f}x faster; frame reads alone "
        f"{2 * n / gather_s * getitem_s:.0f}x faster)"
    )
    print(f"(temp files in {tmp})")


if __name__ == "__main__":
    main()
