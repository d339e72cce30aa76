"""Registers the glam_kinova simulated tasks as a LeRobot env (imported by LeRobot's plugin discovery)."""

from glam_lerobot.sim import lerobot_env  # noqa: F401
