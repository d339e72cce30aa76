"""Training throughput of the stage-2 policies on a merged mixture, each figure a ratio to its compute floor.

    uv run python benchmarks/bench_policy_train.py --root runs/default/relabel/mixture
        [--policies glam_mip,mip] [--chunks column,delta] [--backends pyav,torchcodec] [--workers 0,1]
        [--batch-size 32] [--steps 20]

Every configuration runs what `lerobot-train` runs per step: a DataLoader over the LeRobotDataset (delta
timestamps from the policy config), LeRobot's preprocessor, forward, backward, gradient clipping, AdamW and the
policy's EMA update, on one torch thread (the plugin's default on a 2-core CPU). The floor is the same update on
batches already in memory, measured in the same run. `column` reads the action chunk from the mixture's
`chunk.action` column (the default of glam_mip); `delta` from LeRobot's 20-step delta query on `action`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import torch


def build(root: Path, policy_type: str, column: bool, backend: str, batch_size: int, workers: int):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    import glam_lerobot.policies.register  # noqa: F401  (lerobot-train imports it through the plugin)

    torch.manual_seed(0)
    repo = json.loads((root / "meta" / "info.json").read_text()).get("repo_id", "local/mixture")
    cfg = PreTrainedConfig.get_choice_class(policy_type)(device="cpu", push_to_hub=False, action_chunk_column=column)
    meta = LeRobotDatasetMetadata(repo, root=root)
    ds = LeRobotDataset(repo, root=root, delta_timestamps=resolve_delta_timestamps(cfg, meta), video_backend=backend)
    policy = make_policy(cfg, ds_meta=meta)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=cfg.optimizer_lr)
    return cfg, policy, pre, loader, opt


def update(cfg, policy, opt, batch) -> None:
    policy.train()
    loss, _ = policy.forward(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.optimizer_grad_clip_norm)
    opt.step()
    opt.zero_grad()
    policy.update()


def measure(root, policy_type, column, backend, batch_size, workers, steps) -> dict:
    cfg, policy, pre, loader, opt = build(root, policy_type, column, backend, batch_size, workers)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epochs back to back
    data_s, step_s = [], []
    for i in range(steps + 3):  # 3 warm-up steps (worker start-up, first decode)
        t0 = time.perf_counter()
        batch = pre(next(batches))
        t1 = time.perf_counter()
        update(cfg, policy, opt, batch)
        t2 = time.perf_counter()
        if i >= 3:
            data_s.append(t1 - t0)
            step_s.append(t2 - t0)
    cached = [pre(next(batches)) for _ in range(min(steps, 8))]  # the floor: the same updates, data in memory
    floor_s = []
    for i in range(steps):
        t0 = time.perf_counter()
        update(cfg, policy, opt, cached[i % len(cached)])
        floor_s.append(time.perf_counter() - t0)
    step, floor = statistics.median(step_s), statistics.median(floor_s)
    return {
        "policy": policy_type,
        "chunk": "column" if column else "delta",
        "backend": backend,
        "workers": workers,
        "samples_per_s": batch_size / step,
        "floor_samples_per_s": batch_size / floor,
        "of_floor": floor / step,
        "data_share": statistics.median(data_s) / step,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="a merged mixture written by glam-lerobot relabel")
    ap.add_argument("--policies", default="glam_mip,mip")
    ap.add_argument("--chunks", default="column,delta")
    ap.add_argument("--backends", default="pyav")
    ap.add_argument("--workers", default="0,1")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(
        f"{'policy':9} {'chunk':7} {'backend':10} {'workers':>7} {'samples/s':>10} {'floor':>7} {'of floor':>9} {'data':>6}"
    )
    for policy_type, chunk, backend, workers in itertools.product(
        args.policies.split(","), args.chunks.split(","), args.backends.split(","), args.workers.split(",")
    ):
        r = measure(args.root, policy_type, chunk == "column", backend, args.batch_size, int(workers), args.steps)
        rows.append(r)
        print(
            f"{r['policy']:9} {r['chunk']:7} {r['backend']:10} {r['workers']:>7} {r['samples_per_s']:>10.1f} "
            f"{r['floor_samples_per_s']:>7.1f} {r['of_floor']:>9.0%} {r['data_share']:>6.0%}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
