"""Configuration of the `glam_mip` policy: `mip`'s settings plus the latent chunk and the action decoder."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig

from glam_lerobot.policies.mip.configuration_mip import MipConfig


@PreTrainedConfig.register_subclass("glam_mip")
@dataclass
class GlamMipConfig(MipConfig):
    """GLAM stage 2 (section 3.2, Eq. 8): MIP predicts a chunk of `chunk_size` latent actions from the two views and
    proprioception; an action decoder (`decoder_layers` MLP layers) turns the chunk into robot actions.

    Trains on a merged mixture written by `glam-lerobot relabel` (columns `latent.chunk`, `latent.chunk_is_pad`,
    `mixture.action_is_real`): latent regression on every frame, action regression where the action is real.
    `latent_dim` is read from the dataset when training starts.
    """

    latent_dim: int | None = None
    decoder_width: int = 256
    decoder_layers: int = 4
    action_loss_weight: float = 1.0
    action_chunk_column: bool = True  # the merged mixture always has `chunk.action` (MipConfig)
