"""Configuration of the `mip` policy (also the base of `glam_mip`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import NormalizationMode, PreTrainedConfig
from lerobot.optim import AdamWConfig

from glam_lerobot import schema


@PreTrainedConfig.register_subclass("mip")
@dataclass
class MipConfig(PreTrainedConfig):
    """MIP (Pan et al. 2025) on relative robot action chunks: the BC baseline of GLAM.

    Inputs: the RGB views `observation.images.<camera>` for `cameras` through one shared vision encoder and the
    projector, plus `observation.ee_pose` and `observation.state`. Output: a chunk of `chunk_size` absolute joint
    targets + gripper commands, of which `n_action_steps` are executed before the next prediction.

    Numeric inputs and the relative action chunk are min/max-normalised inside the policy with statistics it
    computes from the training dataset (policies/stats.py), so the LeRobot normaliser only handles images.
    """

    n_obs_steps: int = 1
    chunk_size: int = 20  # H in GLAM Table 3
    n_action_steps: int = 8

    cameras: list[str] = field(default_factory=lambda: list(schema.CAMERAS))
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.MEAN_STD,
            "STATE": NormalizationMode.IDENTITY,
            "ACTION": NormalizationMode.IDENTITY,
        }
    )

    # Vision: a small CNN from scratch by default; "dinov2_s14" with `dinov2_weights` = a local checkpoint.
    vision_backbone: str = "cnn"
    cnn_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    dinov2_weights: str | None = None
    dinov2_image_size: int = 224
    projector_hidden: int = 256
    projector_dim: int = 64

    # MIP (GLAM Table 2: 10 residual MLP blocks of width 256, LayerNorm + Mish).
    mip_width: int = 256
    mip_blocks: int = 10
    t_star: float = 0.9
    loss_scale: float = 1.0
    ema_decay: float = 0.995
    ema_warmup: bool = True
    use_ema: bool = True  # act with the EMA weights (as MIP does)

    optimizer_lr: float = 1e-4
    optimizer_weight_decay: float = 1e-5
    optimizer_grad_clip_norm: float = 10.0
    # torch intra-op threads when the policy runs on a CPU; None = auto (runtime.cpu_threads), 0 = leave torch's
    # own default. torch's default (one thread per core) oversubscribes a small machine that also runs the
    # DataLoader: a policy update measured 1.6-2.1 s with it and 0.27-0.45 s with one thread on 2 cores.
    cpu_threads: int | None = None
    # read the action chunk from the dataset's `chunk.action` column (written into the merged mixture by relabel)
    # instead of LeRobot's delta query on `action`, which 0.6.1 answers ~2x slower than a whole sample otherwise
    action_chunk_column: bool = False
    drop_n_last_frames: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.n_obs_steps != 1:
            raise ValueError(f"{self.type} uses the current observation only; got n_obs_steps={self.n_obs_steps}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps must be in [1, chunk_size={self.chunk_size}], got {self.n_action_steps}")
        if not 0.0 < self.t_star < 1.0:
            raise ValueError(f"t_star must be in (0, 1), got {self.t_star}")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay, grad_clip_norm=self.optimizer_grad_clip_norm
        )

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        needed = [schema.image_key(c) for c in self.cameras] + [schema.EE_POSE]
        missing = [k for k in needed if k not in (self.input_features or {})]
        if missing:
            raise ValueError(
                f"{self.type} needs the inputs {missing}; the dataset/env provides {sorted(self.input_features or {})}"
            )
        if schema.ACTION not in (self.output_features or {}):
            raise ValueError(f"{self.type} needs an `{schema.ACTION}` output feature")

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int] | None:
        return None if self.action_chunk_column else list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
