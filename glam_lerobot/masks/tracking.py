"""Per-episode consistency: the object chosen in the first frame where it is found is the one masked throughout.

A segmentation model sees each frame on its own, so two cubes (or a cube and a look-alike) can swap from one frame
to the next. `follow_targets` turns per-frame detections into one mask per frame that follows the same object(s):

  1. A target (one entry of the object list, e.g. "cube") locks onto the most confident detection of its class in
     the first frame where one is found (detections already taken by another target are skipped).
  2. In later frames the target takes the detection with the same track id (ultralytics' tracker, run with
     `model.track(..., persist=True)` over the episode's frames in order).
  3. Without a matching track id (a tracker that re-numbered the object after an occlusion, or a model without a
     tracker such as SAM), it takes the same-class detection that overlaps its last mask most, if the IoU is at
     least `min_iou`; it then follows that detection's id.
  4. Otherwise the target is missing in that frame. A frame where no target is found gets an empty mask and is
     counted by the caller.

The frame's mask is the union of the targets found in it. Pure numpy, so the logic is tested without a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detection:
    cls: str  # class name, as the model names it
    conf: float
    mask: np.ndarray  # (H, W) bool, at the frame's resolution
    track_id: int | None = None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; two empty masks agree perfectly (1.0)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


@dataclass
class _Target:
    cls: str
    track_id: int | None = None
    last_mask: np.ndarray | None = None

    @property
    def locked(self) -> bool:
        return self.last_mask is not None


def follow_targets(
    frames: list[list[Detection]], targets: list[str], shape: tuple[int, int], min_iou: float = 0.3
) -> np.ndarray:
    """Per-frame detections -> (T, H, W) bool masks of the tracked targets (see the module docstring)."""
    state = [_Target(cls) for cls in targets]
    out = np.zeros((len(frames), *shape), dtype=bool)
    for t, dets in enumerate(frames):
        taken: set[int] = set()
        # Locked targets first, so a target seen before keeps its object when a new one of the same class appears.
        for tgt in sorted(state, key=lambda s: not s.locked):
            best = _match(tgt, dets, taken, min_iou)
            if best is None:
                continue
            taken.add(best)
            det = dets[best]
            tgt.track_id, tgt.last_mask = det.track_id, det.mask
            out[t] |= det.mask
    return out


def _match(tgt: _Target, dets: list[Detection], taken: set[int], min_iou: float) -> int | None:
    free = [i for i, d in enumerate(dets) if i not in taken and d.cls == tgt.cls]
    if not free:
        return None
    if not tgt.locked:
        return max(free, key=lambda i: dets[i].conf)
    if tgt.track_id is not None:
        same = [i for i in free if dets[i].track_id == tgt.track_id]
        if same:
            return same[0]
    ious = [(mask_iou(tgt.last_mask, dets[i].mask), i) for i in free]
    iou, i = max(ious)
    return i if iou >= min_iou else None
