"""glam-lerobot: grounded latent-action world models (GLAM) as a data pipeline around LeRobot datasets."""

import os

# MuJoCo picks its GL backend at import time; the toolkit renders headless everywhere.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
