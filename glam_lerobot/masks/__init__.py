"""Object masks for GLAM-O: one lossless mask column per camera, added to a dataset as a new revision.

objects.py              which objects to mask, with defaults for the five simulated tasks
tracking.py             per-episode consistency: follow the object chosen in the first frame where it is found
ultralytics_backend.py  masks from camera frames with YOLO-seg, YOLOE, SAM, SAM 2 or SAM 3
groundtruth.py          exact masks re-rendered by MuJoCo from a simulated dataset's `sim.qpos`
episodes.py             reading frames and columns of a parent dataset, one episode at a time
columns.py              the stored form of a mask (HxWx3 PNG in parquet) and its stats
add.py                  `masks add`: all of the above into a new revision, resumable
score.py                `masks score`: IoU of a model against ground truth, and a PNG panel
"""

from glam_lerobot.masks.add import MaskSummary, add_masks

__all__ = ["MaskSummary", "add_masks"]
