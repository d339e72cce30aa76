"""Registers the glam_mip and mip policies with LeRobot (imported by LeRobot's plugin discovery)."""

from glam_lerobot import hub_endpoint
from glam_lerobot.policies import register  # noqa: F401

# so that stock `lerobot-train --policy.push_to_hub=true` also works against a self-hosted HF_ENDPOINT
hub_endpoint.install()
