"""Masks from camera frames with any ultralytics segmentation model the user has weights for.

  YOLO-seg (closed vocabulary): objects are matched against the model's class names ("bottle", "bowl", ...).
  YOLOE (open vocabulary): the text prompt (default: the object names) becomes the model's classes (set_classes).
  SAM 3: the text prompt goes to ultralytics' SAM3SemanticPredictor, frame by frame.
  SAM / SAM 2 / MobileSAM: a box or point prompt for the episode's first frame ("box:x1,y1,x2,y2" or
      "point:x,y" in pixels); every later frame is prompted with the box of the previous frame's mask (prompt
      propagation), so the same object is followed.

Per-episode consistency (tracking.follow_targets): YOLO models run ultralytics' own tracker
(`model.track(frames, persist=True)`, ByteTrack by default), reset at the start of each episode, over batches of
frames in order; the target locks onto a track id in the first frame where it is found. SAM 3 gives no track ids,
so its detections are associated by mask IoU with the previous frame. Inference is batched (YOLO: `batch` frames
per call) and runs on the GPU when torch sees one.

The model is a local path or a name ultralytics resolves (it downloads known weights when online). A YAML config
("yolo11n-seg.yaml") builds an untrained model: useful only for testing the plumbing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glam_lerobot.masks.objects import classes_of
from glam_lerobot.masks.tracking import Detection, follow_targets


def default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def model_kind(model: str) -> str:
    """'sam3', 'sam' (SAM, SAM 2, MobileSAM) or 'yolo' (YOLO-seg, YOLOE, and anything else YOLO() loads)."""
    stem = Path(model).stem.lower()
    if stem.startswith("sam3"):
        return "sam3"
    if stem.startswith(("sam", "mobile_sam")):
        return "sam"
    return "yolo"


def parse_geometric_prompt(prompt: str) -> dict:
    """'box:x1,y1,x2,y2' -> {'bboxes': [[...]]}; 'point:x,y' -> {'points': [[x, y]], 'labels': [1]}."""
    kind, _, nums = prompt.partition(":")
    try:
        values = [float(v) for v in nums.split(",")]
    except ValueError:
        values = []
    if kind == "box" and len(values) == 4:
        return {"bboxes": [values]}
    if kind == "point" and len(values) == 2:
        return {"points": [values], "labels": [1]}
    raise ValueError(
        f"a SAM / SAM 2 prompt is 'box:x1,y1,x2,y2' or 'point:x,y' (pixels of the first frame), not {prompt!r}"
    )


class UltralyticsMasker:
    """One model, one object list; `mask_episode(frames)` -> (T, H, W) bool masks of the tracked objects."""

    def __init__(
        self,
        model: str,
        objects: list[str] | None = None,
        prompt: str | None = None,
        *,
        imgsz: int | None = None,
        batch: int = 16,
        conf: float = 0.25,
        device: str | None = None,
        tracker: str | None = "bytetrack.yaml",
    ):
        self.model_name, self.kind = str(model), model_kind(str(model))
        self.imgsz, self.batch, self.conf, self.tracker = imgsz, max(1, batch), conf, tracker
        self.device = device or default_device()
        self.prompt = prompt
        if self.kind == "sam":
            if not prompt:
                raise ValueError(f"{model}: SAM and SAM 2 need a prompt: --prompt box:x1,y1,x2,y2 or point:x,y")
            self.geometric = parse_geometric_prompt(prompt)
            self.targets = ["object"]
        else:
            text = [p.strip() for p in prompt.split(",") if p.strip()] if prompt else None
            self.targets = list(objects or text or [])
            if not self.targets:
                raise ValueError("name the objects to mask (--objects) or give a text prompt (--prompt)")
            self.classes = text or classes_of(self.targets)
            missing = set(classes_of(self.targets)) - set(self.classes)
            if missing:
                raise ValueError(f"objects {sorted(missing)} are not in the prompt {self.classes}")
        self._load()

    # --- model loading -------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.kind == "sam":
            from ultralytics import SAM

            self.model = SAM(self.model_name)
        elif self.kind == "sam3":
            from ultralytics.models.sam import SAM3SemanticPredictor

            self.model = SAM3SemanticPredictor(
                overrides=dict(
                    model=self.model_name,
                    task="segment",
                    mode="predict",
                    conf=self.conf,
                    save=False,
                    verbose=False,
                    device=self.device,
                    **({"imgsz": self.imgsz} if self.imgsz else {}),
                )
            )
        else:
            from ultralytics import YOLO, YOLOE

            self.model = YOLO(self.model_name)
            if getattr(self.model, "task", None) != "segment":
                raise ValueError(f"{self.model_name}: a {self.model.task} model, not a segmentation model (-seg)")
            if isinstance(self.model, YOLOE):
                self.model.set_classes(self.classes)  # the text prompt: open vocabulary
            else:
                known = set(self.model.names.values())
                unknown = [c for c in self.classes if c not in known]
                if unknown:
                    raise ValueError(
                        f"{self.model_name} does not know {unknown}; its classes are "
                        f"{', '.join(sorted(known)[:40])}{' ...' if len(known) > 40 else ''}. Use an open-vocabulary "
                        "model (YOLOE, SAM 3) with --prompt, or --objects with one of these names"
                    )

    # --- inference ---------------------------------------------------------------------------------------
    def mask_episode(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB frames of one episode -> (T, H, W) bool masks."""
        if len(frames) == 0:
            return np.zeros((0, *frames.shape[1:3]), bool)
        bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # ultralytics reads arrays as OpenCV BGR
        if self.kind == "sam":
            return self._sam_propagate(bgr)
        dets = self._sam3(bgr) if self.kind == "sam3" else self._yolo(bgr)
        return follow_targets(dets, self.targets, frames.shape[1:3])

    def _common(self) -> dict:
        imgsz = self.imgsz or self._frame_size
        return dict(imgsz=imgsz, conf=self.conf, device=self.device, retina_masks=True, verbose=False)

    def _yolo(self, bgr: list[np.ndarray]) -> list[list[Detection]]:
        self._frame_size = max(bgr[0].shape[:2])
        out: list[list[Detection]] = []
        predictor = getattr(self.model, "predictor", None)
        for tracker in getattr(predictor, "trackers", []) or []:
            tracker.reset()  # a new episode: no track carries over
        for start in range(0, len(bgr), self.batch):
            chunk = bgr[start : start + self.batch]
            if self.tracker:
                results = self.model.track(
                    chunk, persist=True, tracker=self.tracker, batch=len(chunk), **self._common()
                )
            else:
                results = self.model.predict(chunk, batch=len(chunk), **self._common())
            out.extend(detections(r) for r in results)
        return out

    def _sam3(self, bgr: list[np.ndarray]) -> list[list[Detection]]:
        self._frame_size = max(bgr[0].shape[:2])
        out = []
        for im in bgr:  # SAM 3's semantic predictor takes one image per call
            self.model.set_image(im)
            out.extend(detections(r, names=self.classes) for r in self.model(text=self.classes))
        return out

    def _sam_propagate(self, bgr: list[np.ndarray]) -> np.ndarray:
        # SAM runs at its native input size (1024) unless --imgsz says otherwise: its encoder was trained there.
        kw = dict(conf=self.conf, device=self.device, verbose=False, **({"imgsz": self.imgsz} if self.imgsz else {}))

        def segment(im: np.ndarray, prompt: dict) -> np.ndarray:
            result = self.model.predict(im, **prompt, **kw)[0]
            if result.masks is None:
                return np.zeros((0, *im.shape[:2]), bool)
            return result.masks.data.cpu().numpy() > 0.5

        return propagate_prompt(bgr, self.geometric, segment)


def propagate_prompt(frames: list[np.ndarray], prompt: dict, segment) -> np.ndarray:
    """SAM / SAM 2 prompt propagation over one episode: (T, H, W) bool.

    Frame 0 is segmented with the user's prompt; each later frame with the bounding box of the last mask found, so
    the object chosen in the first frame is followed. `segment(frame, prompt) -> (N, H, W) bool` (SAM may return
    several candidate masks; the largest is kept). A frame where nothing is found keeps an empty mask and the last
    prompt is reused on the next frame.
    """
    h, w = frames[0].shape[:2]
    out = np.zeros((len(frames), h, w), bool)
    for t, im in enumerate(frames):
        masks = segment(im, prompt)
        if len(masks) == 0 or not masks.any():
            continue
        out[t] = masks[int(np.argmax(masks.reshape(len(masks), -1).sum(1)))]
        ys, xs = np.nonzero(out[t])
        prompt = {"bboxes": [[float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]]}
    return out


def detections(result, names: list[str] | None = None) -> list[Detection]:
    """An ultralytics Results -> Detections (masks at the original frame size, thanks to retina_masks)."""
    if result.masks is None or result.boxes is None or len(result.boxes) == 0:
        return []
    h, w = result.orig_shape
    data = result.masks.data.cpu().numpy()
    if data.shape[1:] != (h, w):  # not retina: scale to the frame (nearest keeps it binary)
        import cv2

        data = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in data])
    names = names or result.names
    cls = result.boxes.cls.cpu().numpy().astype(int)
    conf = result.boxes.conf.cpu().numpy()
    ids = result.boxes.id.cpu().numpy().astype(int) if result.boxes.id is not None else [None] * len(cls)
    return [
        Detection(cls=names[int(c)], conf=float(p), mask=m > 0.5, track_id=None if i is None else int(i))
        for c, p, m, i in zip(cls, conf, data, ids, strict=True)
    ]
