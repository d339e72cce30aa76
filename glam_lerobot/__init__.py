"""glam-lerobot: grounded latent-action world models (GLAM) as a data pipeline around LeRobot datasets."""

import logging
import os

# MuJoCo picks its GL backend at import time; the toolkit renders headless everywhere.
os.environ.setdefault("MUJOCO_GL", "egl")

# Without system FFmpeg libraries torchcodec cannot load, and LeRobot logs a ~250-line traceback every time it
# falls back to PyAV (which bundles its own FFmpeg and is what the toolkit decodes with anyway).
logging.getLogger("lerobot.utils.import_utils").addFilter(lambda record: "torchcodec" not in record.getMessage())

__version__ = "0.1.0"
