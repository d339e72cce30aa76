"""Pre/post-processors of the `glam_mip` policy: LeRobot's defaults, plus the guarantee that the mixture's toolkit
columns (`latent.chunk`, `mixture.action_is_real`, ...) survive the preprocessor (policies/toolkit_columns.py)."""

from __future__ import annotations

from lerobot.processor import make_default_pre_post_processors

from glam_lerobot.policies.glam_mip.configuration_glam_mip import GlamMipConfig
from glam_lerobot.policies.toolkit_columns import keep_toolkit_columns


def make_glam_mip_pre_post_processors(config: GlamMipConfig, dataset_stats=None):
    keep_toolkit_columns()
    return make_default_pre_post_processors(config, dataset_stats, normalizer_device=config.device)
