"""The `glam_mip` policy: GLAM stage 2 (section 3.2, Eq. 8).

c_t = [projector(vision(overhead), vision(front)), ee pose, joint state where real, is-real flag]
z_hat (H x d) = MIP(c_t)                        two network calls, mip_core.py
a_hat (H x A) = decoder(z_hat)                  4-layer MLP over the whole latent chunk, relative actions
loss = MIP loss on the latent chunk (every frame of the mixture, padding masked)
     + action_loss_weight * |a_hat - a|^2      (only frames whose robot action is real, padding masked)

During training the decoder reads MIP's step-2 prediction (what the sampler returns at inference), and the action
term trains the decoder and, end to end, MIP and the encoders (the paper trains the decoder jointly).
Auxiliary frames carry zeros in `observation.state`; the state input is zeroed there and a flag tells the network
whether it is real, so it learns to act from the ee pose and images alone on UMI-like frames as well.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glam_lerobot import schema
from glam_lerobot.policies.backbone import MLP
from glam_lerobot.policies.glam_mip.configuration_glam_mip import GlamMipConfig
from glam_lerobot.policies.mip.modeling_mip import MinMax, MipModel, MipPolicy
from glam_lerobot.policies.mip_core import mip_loss, mip_sample


class GlamMipModel(MipModel):
    def __init__(self, config: GlamMipConfig, proprio_dim: int, action_dim: int):
        super().__init__(config, proprio_dim, config.latent_dim)
        self.decoder = MLP(
            config.chunk_size * config.latent_dim,
            config.chunk_size * action_dim,
            config.decoder_width,
            config.decoder_layers,
        )


class GlamMipPolicy(MipPolicy):
    config_class = GlamMipConfig
    name = "glam_mip"

    def _dataset_stats(self, dataset_meta) -> dict:
        from glam_lerobot import provenance
        from glam_lerobot.policies.stats import compute_policy_stats

        # relabel records the chunk horizon it wrote; a policy with another chunk_size would misread latent.chunk
        horizon = provenance.read(dataset_meta.root).get("horizon")
        if horizon is not None and int(horizon) != self.config.chunk_size:
            raise ValueError(
                f"{dataset_meta.root}: latent.chunk holds {horizon} latents per frame (meta/glam.json "
                f"horizon) but the policy's chunk_size is {self.config.chunk_size}: pass "
                f"--policy.chunk_size={horizon} or relabel with --horizon {self.config.chunk_size}"
            )
        stats = compute_policy_stats(dataset_meta.root, dataset_meta.features, self.config.chunk_size, latent=True)
        self.config.latent_dim = int(len(stats["latent"]["min"]))
        return stats

    def _build_extra_normalisers(self) -> None:
        if not self.config.latent_dim:
            raise ValueError(
                "glam_mip needs latent_dim: train it on a relabelled mixture (latent.chunk column) or "
                "load a trained checkpoint"
            )
        self.latent_norm = MinMax(self.config.latent_dim)

    def _load_stats(self, stats: dict) -> None:
        super()._load_stats(stats)
        self.latent_norm.set(stats["latent"])

    def _proprio_dim(self) -> int:
        return self.ee_dim + self.action_dim + 1

    def _build_model(self) -> nn.Module:
        return GlamMipModel(self.config, self._proprio_dim(), self.action_dim)

    def _proprio(self, batch: dict[str, Tensor]) -> Tensor:
        ee = self.ee_norm(self._vector(batch, schema.EE_POSE))
        real = self._real(batch, ee)[:, None]
        state = self.state_norm(self._vector(batch, schema.STATE))
        state = torch.where(real > 0.5, state, torch.zeros_like(state))  # no value, no gradient from filler
        return torch.cat([ee, state, real], dim=-1)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        h, d = self.config.chunk_size, self.config.latent_dim
        cond = self._condition(self.model, batch)
        if schema.LATENT_CHUNK not in batch:
            raise KeyError(
                f"the training batch has no `{schema.LATENT_CHUNK}`: glam_mip trains on a relabelled "
                "mixture (see `glam-lerobot relabel`)"
            )
        latents = self.latent_norm(batch[schema.LATENT_CHUNK].to(cond.device, cond.dtype).reshape(-1, h, d))
        pad = batch.get(schema.LATENT_CHUNK_IS_PAD)
        latent_mask = None if pad is None else 1.0 - pad.to(cond.device, cond.dtype).reshape(-1, h)
        latent_loss, latent_pred, info = mip_loss(self.model.mip, latents, cond, latent_mask, self.config.t_star)
        decoded = self.model.decoder(latent_pred.flatten(1)).view(-1, h, self.action_dim)
        action_loss = self._masked_action_error(decoded, self.action_norm(self._relative_chunk(batch)), batch)
        loss = self.config.loss_scale * latent_loss + self.config.action_loss_weight * action_loss
        info.update(
            latent_loss=latent_loss.item(),
            action_loss=action_loss.item(),
            real_fraction=self._real(batch, cond).mean().item(),
        )
        return loss, info

    def _sample_normalised_relative(self, model: nn.Module, cond: Tensor) -> Tensor:
        h = self.config.chunk_size
        latents = mip_sample(model.mip, cond, (h, self.config.latent_dim), self.config.t_star)
        return model.decoder(latents.flatten(1)).view(-1, h, self.action_dim)

    @torch.no_grad()
    def predict_latent_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, H, d) latent actions in the world model's units (for inspection and plots)."""
        model = self.ema_model if self.config.use_ema else self.model
        cond = self._condition(model, batch)
        z = mip_sample(model.mip, cond, (self.config.chunk_size, self.config.latent_dim), self.config.t_star)
        return self.latent_norm.inverse(z)
