"""Inference latency of the stage-2 policies: one action chunk (H = 20) on ONE CPU core, against the 100 ms control
period of the 10 Hz Kinova tasks.

    uv run python benchmarks/bench_policy.py                      # glam_mip and mip, default CNN, 96 px views
    uv run python benchmarks/bench_policy.py --dinov2             # also the paper's DINOv2-S/14 at 224 px
    uv run python benchmarks/bench_policy.py --arms 2 --latent-dim 16   # stack-three (bimanual) sizes

Times `predict_action_chunk` (vision encoder for both views, the two MIP calls, decoding, relative -> absolute) on
the EMA weights, as `select_action` runs it once per chunk. DINOv2 weights are random (same architecture and cost).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CONTROL_PERIOD_MS = 100.0


def build(policy_type: str, image_size: int, arms: int, latent_dim: int, backbone: str):
    from lerobot.configs import FeatureType, PolicyFeature

    from glam_lerobot import schema
    from glam_lerobot.policies.glam_mip.modeling_glam_mip import GlamMipConfig, GlamMipPolicy
    from glam_lerobot.policies.mip.modeling_mip import MipConfig, MipPolicy

    a = schema.STATE_DIM_PER_ARM * arms
    inputs = {
        schema.image_key(c): PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size)) for c in schema.CAMERAS
    }
    inputs[schema.EE_POSE] = PolicyFeature(FeatureType.STATE, (schema.EE_POSE_DIM_PER_ARM * arms,))
    inputs[schema.STATE] = PolicyFeature(FeatureType.STATE, (a,))
    outputs = {schema.ACTION: PolicyFeature(FeatureType.ACTION, (a,))}
    common = dict(
        device="cpu", push_to_hub=False, input_features=inputs, output_features=outputs, vision_backbone=backbone
    )
    if policy_type == "glam_mip":
        return GlamMipPolicy(GlamMipConfig(latent_dim=latent_dim, **common)).eval()
    return MipPolicy(MipConfig(**common)).eval()


def observation(policy, image_size: int, batch: int = 1) -> dict:
    from glam_lerobot import schema

    obs = {schema.image_key(c): torch.randn(batch, 3, image_size, image_size) for c in policy.config.cameras}
    obs[schema.EE_POSE] = torch.randn(batch, policy.ee_dim)
    obs[schema.STATE] = torch.randn(batch, policy.action_dim)
    return obs


def time_chunk(policy, obs: dict, repeats: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(3):
            policy.predict_action_chunk(obs)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            policy.predict_action_chunk(obs)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--arms", type=int, default=1)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dinov2", action="store_true", help="also time DINOv2-S/14 at 224 px (slow on a CPU)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    runs = [("glam_mip", "cnn", args.image_size), ("mip", "cnn", args.image_size)]
    if args.dinov2:
        runs.append(("glam_mip", "dinov2_s14", args.image_size))
    print(
        f"one chunk (H=20) on 1 CPU thread, {args.arms} arm(s), latent d={args.latent_dim}, "
        f"control period {CONTROL_PERIOD_MS:.0f} ms"
    )
    print(f"{'policy':10} {'vision':11} {'views':>9} {'params':>8} {'median ms':>10} {'p90 ms':>8} {'of period':>10}")
    for policy_type, backbone, size in runs:
        policy = build(policy_type, size, args.arms, args.latent_dim, backbone)
        n_params = sum(p.numel() for p in policy.model.parameters())
        times = sorted(time_chunk(policy, observation(policy, size), args.repeats if backbone == "cnn" else 5))
        med, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
        views = f"2x{size}px" if backbone == "cnn" else f"2x{policy.config.dinov2_image_size}px"  # DINOv2 resizes
        print(
            f"{policy_type:10} {backbone:11} {views:>9} {n_params / 1e6:7.2f}M {med:10.2f} {p90:8.2f} "
            f"{med / CONTROL_PERIOD_MS:9.1%}"
        )


if __name__ == "__main__":
    main()
