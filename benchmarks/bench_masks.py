"""Masking speed on CPU: frames per second of `masks add`'s ultralytics path against the model's bare predict loop.

    uv run python benchmarks/bench_masks.py [--size 96] [--frames 200] [--model yolo11n-seg.yaml] [--end-to-end]

The model is YOLO11n-seg built from its YAML config (no weights can be downloaded here; inference cost does not
depend on the weights, apart from post-processing of what is detected). Frames are the synthetic episodes of
glam_lerobot.synthetic at the dataset's resolution (default 96x96, the simulator's). Figures printed:
  bare predict, 1 frame/call     the loop a user would write: model.predict(frame) per frame
  bare predict, batched          model.predict(list of --batch frames)
  masker, tracker none           UltralyticsMasker.mask_episode: batched predict + IoU association
  masker, ByteTrack              the default: batched model.track(persist=True) + track-id association
  --end-to-end                   `add_masks` on a written dataset: decode videos, mask, write the revision
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def frames_of(n: int, size: int) -> np.ndarray:
    from glam_lerobot import schema, synthetic

    eps, got = [], 0
    while got < n:
        ep = synthetic.produce(synthetic.job(len(eps), length=50, image_size=size))["frames"][schema.image_key("front")]
        eps.append(ep)
        got += len(ep)
    return np.concatenate(eps)[:n]


def rate(fn, n: int, repeat: int = 2) -> float:
    fn()  # warm-up: model fuse, first-call allocations
    best = min(_timed(fn) for _ in range(repeat))
    return n / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="yolo11n-seg.yaml")
    ap.add_argument("--end-to-end", action="store_true")
    args = ap.parse_args()

    import torch
    from ultralytics import YOLO

    from glam_lerobot.masks.ultralytics_backend import UltralyticsMasker

    torch.manual_seed(0)
    frames = frames_of(args.frames, args.size)
    bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    model = YOLO(args.model)
    kw = dict(imgsz=args.size, conf=0.25, device="cpu", verbose=False)
    name0 = model.names[0]

    print(
        f"CPU, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; "
        f"{args.model}, {len(frames)} frames of {args.size}x{args.size}, batch {args.batch}"
    )
    figures = {
        "bare predict, 1 frame/call": rate(lambda: [model.predict(f, **kw) for f in bgr], len(bgr)),
        "bare predict, batched": rate(
            lambda: [model.predict(bgr[i : i + args.batch], **kw) for i in range(0, len(bgr), args.batch)], len(bgr)
        ),
    }
    for label, tracker in (("masker, tracker none", None), ("masker, ByteTrack", "bytetrack.yaml")):
        masker = UltralyticsMasker(args.model, [name0], batch=args.batch, conf=0.25, device="cpu", tracker=tracker)
        masker.model = model  # same weights as the bare loop
        figures[label] = rate(
            lambda m=masker: [m.mask_episode(frames[i : i + 50]) for i in range(0, len(frames), 50)], len(frames)
        )
    for label, fps in figures.items():
        print(f"  {label:32s} {fps:8.1f} frames/s")

    if args.end_to_end:
        from glam_lerobot import synthetic
        from glam_lerobot.masks import add_masks
        from glam_lerobot.writing import write_dataset

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ds"
            n_eps = max(1, args.frames // 50)
            write_dataset(
                root,
                "bench/ds",
                10,
                synthetic.features(args.size),
                [synthetic.job(i, length=50, image_size=args.size) for i in range(n_eps)],
                synthetic.produce,
            )
            weights = Path(tmp) / "model.pt"
            model.save(weights)
            t = time.perf_counter()
            s = add_masks(root, "ultralytics", model=str(weights), objects=[name0], batch=args.batch, device="cpu")
            dt = time.perf_counter() - t
            print(
                f"  end to end (2 cameras, decode + mask + write revision): {s.frames} frames x 2 cameras in "
                f"{dt:.1f} s = {2 * s.frames / dt:.1f} camera-frames/s"
            )


if __name__ == "__main__":
    main()
