"""Pre/post-processors of the `mip` policy: LeRobot's defaults (rename, batch, device, normalise images; then
unnormalise and back to CPU). State, ee pose and actions pass through unnormalised (IDENTITY in the config):
the policy normalises them itself (policies/stats.py explains why)."""

from __future__ import annotations

from lerobot.processor import make_default_pre_post_processors

from glam_lerobot.policies.mip.configuration_mip import MipConfig
from glam_lerobot.policies.toolkit_columns import keep_toolkit_columns


def make_mip_pre_post_processors(config: MipConfig, dataset_stats=None):
    keep_toolkit_columns()  # so `mixture.action_is_real` reaches the policy when it trains on a mixture
    return make_default_pre_post_processors(config, dataset_stats, normalizer_device=config.device)
