"""Registers the glam_mip and mip policies with LeRobot (imported by LeRobot's plugin discovery)."""

from glam_lerobot.policies import register  # noqa: F401
