"""The `mip` policy: MIP regressing chunks of relative robot actions (GLAM's BC baseline), and the pieces that the
`glam_mip` policy shares with it (observation encoder, min/max normalisers, EMA, action queue).

Relative actions: the policy regresses a[t+k] - s[t] for the joints (gripper absolute), k = 0..H-1, where s[t] is
the joint state when the chunk is predicted, and adds that same s[t] back before executing the chunk. This is the
only convention the training batch supports exactly: LeRobot gives a policy the action chunk but the state of the
current frame only (asking for a state chunk would decode H video frames per sample, since observation delta
indices apply to every `observation.*` key). Adding a later step's state instead would count the motion twice.
"""

from __future__ import annotations

from collections import deque
from copy import deepcopy

import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from torch import Tensor, nn

from glam_lerobot import schema
from glam_lerobot.policies.backbone import MipNetwork, VisionProjector, make_vision_encoder
from glam_lerobot.policies.mip.configuration_mip import MipConfig
from glam_lerobot.policies.mip_core import ema_decay, ema_update, masked_mean, mip_loss, mip_sample


class MinMax(nn.Module):
    """x -> [-1, 1] per dimension with stored min/max (identity until statistics are loaded)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("min", -torch.ones(dim))
        self.register_buffer("max", torch.ones(dim))

    def set(self, stats: dict) -> None:
        self.min.copy_(torch.as_tensor(stats["min"], dtype=torch.float32).reshape(self.min.shape))
        self.max.copy_(torch.as_tensor(stats["max"], dtype=torch.float32).reshape(self.max.shape))

    def _range(self) -> Tensor:
        r = self.max - self.min
        return torch.where(r < 1e-6, torch.ones_like(r), r)  # constant dimensions map to -1 and back

    def forward(self, x: Tensor) -> Tensor:
        return 2.0 * (x - self.min) / self._range() - 1.0

    def inverse(self, x: Tensor) -> Tensor:
        return (x + 1.0) / 2.0 * self._range() + self.min


class ObservationEncoder(nn.Module):
    """Views -> one shared vision encoder -> concatenated -> projector; then proprioception appended (c_t)."""

    def __init__(self, config: MipConfig, proprio_dim: int):
        super().__init__()
        self.vision = make_vision_encoder(config.vision_backbone, config.dinov2_image_size, tuple(config.cnn_channels))
        self.projector = VisionProjector(
            len(config.cameras) * self.vision.out_dim, config.projector_hidden, config.projector_dim
        )
        self.out_dim = config.projector_dim + proprio_dim

    def forward(self, images: list[Tensor], proprio: Tensor) -> Tensor:
        feats = self.vision(torch.cat(images, dim=0)).chunk(len(images), dim=0)  # one batched encoder call
        return torch.cat([self.projector(torch.cat(feats, dim=-1)), proprio], dim=-1)


class MipModel(nn.Module):
    """Everything that trains (and gets an EMA copy): observation encoder and the MIP network."""

    def __init__(self, config: MipConfig, proprio_dim: int, chunk_dim: int):
        super().__init__()
        self.encoder = ObservationEncoder(config, proprio_dim)
        self.mip = MipNetwork(config.chunk_size, chunk_dim, self.encoder.out_dim, config.mip_width, config.mip_blocks)


class MipPolicy(PreTrainedPolicy):
    config_class = MipConfig
    name = "mip"

    def __init__(self, config: MipConfig, dataset_stats=None, dataset_meta=None, **kwargs):
        super().__init__(config)
        device = getattr(config, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
        if str(device).startswith("cpu") and config.cpu_threads != 0:
            from glam_lerobot.runtime import set_cpu_threads

            set_cpu_threads(config.cpu_threads)
        config.validate_features()
        self.config = config
        self.action_dim = config.output_features[schema.ACTION].shape[0]
        self.arms = max(1, self.action_dim // schema.STATE_DIM_PER_ARM)
        self.ee_dim = config.input_features[schema.EE_POSE].shape[0]
        stats = self._dataset_stats(dataset_meta) if dataset_meta is not None else None
        self.ee_norm = MinMax(self.ee_dim)
        self.state_norm = MinMax(self.action_dim)
        self.action_norm = MinMax(self.action_dim)  # of the relative action chunk
        self._build_extra_normalisers()
        if stats is not None:
            self._load_stats(stats)
        self.model = self._build_model()
        if config.vision_backbone == "dinov2_s14" and dataset_meta is not None and not config.pretrained_path:
            if not config.dinov2_weights:  # fresh training: start from the pretrained DINOv2, as the paper does
                raise ValueError(
                    "vision_backbone=dinov2_s14 needs --policy.dinov2_weights=<path to "
                    "dinov2_vits14_pretrain.pth or a .safetensors export>"
                )
            self.model.encoder.vision.load_weights(config.dinov2_weights)
        self.ema_model = deepcopy(self.model).requires_grad_(False)
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        self.reset()

    # --- construction hooks (overridden by glam_mip) ---
    def _dataset_stats(self, dataset_meta) -> dict:
        from glam_lerobot.policies.stats import compute_policy_stats

        return compute_policy_stats(dataset_meta.root, dataset_meta.features, self.config.chunk_size, latent=False)

    def _build_extra_normalisers(self) -> None:
        pass

    def _load_stats(self, stats: dict) -> None:
        self.ee_norm.set(stats[schema.EE_POSE])
        self.state_norm.set(stats[schema.STATE])
        self.action_norm.set(stats["relative_action"])

    def _proprio_dim(self) -> int:
        return self.ee_dim + self.action_dim

    def _build_model(self) -> nn.Module:
        return MipModel(self.config, self._proprio_dim(), self.action_dim)

    # --- LeRobot interface ---
    def get_optim_params(self):
        return self.model.parameters()

    def reset(self):
        self._queue: deque[Tensor] = deque()

    def update(self):
        """Called by lerobot-train after every optimizer step: move the EMA weights."""
        decay = ema_decay(int(self.ema_steps), self.config.ema_decay, self.config.ema_warmup)
        ema_update(self.ema_model, self.model, decay)
        self.ema_steps += 1

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        cond = self._condition(self.model, batch)
        target = self.action_norm(self._relative_chunk(batch))
        loss, _, info = mip_loss(self.model.mip, target, cond, self._action_mask(batch), self.config.t_star)
        return self.config.loss_scale * loss, info

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        """(B, chunk_size, action_dim) absolute joint targets + gripper commands for the current observation."""
        model = self.ema_model if self.config.use_ema else self.model
        cond = self._condition(model, batch)
        relative = self.action_norm.inverse(self._sample_normalised_relative(model, cond))
        state = self._vector(batch, schema.STATE)[:, None, :].to(relative.dtype)
        return schema.absolute_action(relative, state, arms=self.arms)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        self.eval()
        if not self._queue:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            self._queue.extend(chunk.transpose(0, 1))
        return self._queue.popleft()

    # --- pieces ---
    def _sample_normalised_relative(self, model: nn.Module, cond: Tensor) -> Tensor:
        return mip_sample(model.mip, cond, (self.config.chunk_size, self.action_dim), self.config.t_star)

    def _real(self, batch: dict[str, Tensor], like: Tensor) -> Tensor:
        """(B,) 1 where the frame's robot action/state are real; all ones without a mixture column (robot data)."""
        real = batch.get(schema.ACTION_IS_REAL)
        if real is None:
            return torch.ones(like.shape[0], device=like.device, dtype=like.dtype)
        return real.reshape(like.shape[0], -1)[:, 0].to(device=like.device, dtype=like.dtype)

    @staticmethod
    def _vector(batch: dict[str, Tensor], key: str) -> Tensor:
        """(B, dim) even for a single unbatched frame: LeRobot's AddBatchDim step batches only
        `observation.state` and images, not `observation.ee_pose`."""
        x = batch[key]
        return x[None] if x.dim() == 1 else x

    def _proprio(self, batch: dict[str, Tensor]) -> Tensor:
        ee, state = self._vector(batch, schema.EE_POSE), self._vector(batch, schema.STATE)
        return torch.cat([self.ee_norm(ee), self.state_norm(state)], dim=-1)

    def _condition(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        images = [batch[schema.image_key(c)] for c in self.config.cameras]
        return model.encoder(images, self._proprio(batch))

    def _action_chunk(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """The (B, H, A) absolute action chunk and its (B, H) pad mask: from `chunk.action` with
        `action_chunk_column`, else from LeRobot's delta query (`action`, `action_is_pad`)."""
        if not self.config.action_chunk_column:
            return batch[schema.ACTION], batch.get("action_is_pad")
        if schema.ACTION_CHUNK not in batch:
            raise KeyError(
                f"the training batch has no `{schema.ACTION_CHUNK}` column (a mixture relabelled before it existed?): "
                "relabel again, or pass --policy.action_chunk_column=false to read the chunk through LeRobot's "
                "delta query"
            )
        chunk = batch[schema.ACTION_CHUNK]
        pad = batch.get(schema.ACTION_CHUNK_IS_PAD)
        return chunk.view(chunk.shape[0], self.config.chunk_size, -1), None if pad is None else pad > 0.5

    def _relative_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        action, _ = self._action_chunk(batch)
        return schema.relative_action(action, batch[schema.STATE][:, None, :].to(action.dtype), arms=self.arms)

    def _action_mask(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, H): 1 where the chunk step is inside the episode and the frame's action is real."""
        action, pad = self._action_chunk(batch)
        valid = torch.ones(action.shape[:2], device=action.device) if pad is None else (~pad.bool()).float()
        return valid * self._real(batch, action)[:, None]

    def _masked_action_error(self, pred: Tensor, target: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return masked_mean(((pred - target) ** 2).sum(-1), self._action_mask(batch))
