"""The ultralytics backend's model families: SAM prompt propagation, prompts, and models that cannot segment."""

import numpy as np
import pytest

from glam_lerobot.masks.ultralytics_backend import (
    UltralyticsMasker,
    model_kind,
    parse_geometric_prompt,
    propagate_prompt,
)


def scene(t: int, size: int = 32) -> np.ndarray:
    """A square moving right 2 px per frame, and a distractor square that stays put."""
    im = np.zeros((size, size, 3), np.uint8)
    im[4:10, 2 + 2 * t : 8 + 2 * t] = 200
    im[20:28, 20:28] = 200
    return im


def fake_sam(frame: np.ndarray, prompt: dict) -> np.ndarray:
    """Like SAM: the whole bright object(s) touching the prompt (a point, or a box grown by 3 px)."""
    from scipy import ndimage

    x1, y1, x2, y2 = prompt["bboxes"][0] if "bboxes" in prompt else (*prompt["points"][0], *prompt["points"][0])
    h, w = frame.shape[:2]
    region = np.zeros((h, w), bool)
    region[max(0, int(y1) - 3) : int(y2) + 4, max(0, int(x1) - 3) : int(x2) + 4] = True
    labels, _ = ndimage.label(frame[..., 0] > 0)
    hit = np.unique(labels[region & (labels > 0)])
    mask = np.isin(labels, hit[hit > 0])
    return mask[None] if mask.any() else np.zeros((0, h, w), bool)


def test_sam_prompt_propagation_follows_the_prompted_object_and_not_the_other():
    frames = [scene(t) for t in range(8)]
    out = propagate_prompt(frames, parse_geometric_prompt("point:4,6"), fake_sam)
    for t in range(8):
        expected = np.zeros((32, 32), bool)
        expected[4:10, 2 + 2 * t : 8 + 2 * t] = True
        np.testing.assert_array_equal(out[t], expected)


def test_sam_frames_without_the_object_are_empty_and_the_prompt_carries_over():
    frames = [scene(0), np.zeros((32, 32, 3), np.uint8), scene(1)]
    out = propagate_prompt(frames, parse_geometric_prompt("box:2,4,8,10"), fake_sam)
    assert out[0].any() and not out[1].any() and out[2][4:10, 4:10].all()


def test_prompts_and_model_families_are_understood_or_refused_clearly():
    assert parse_geometric_prompt("box:1,2,3,4") == {"bboxes": [[1.0, 2.0, 3.0, 4.0]]}
    assert parse_geometric_prompt("point:5,6") == {"points": [[5.0, 6.0]], "labels": [1]}
    with pytest.raises(ValueError, match="box:x1,y1,x2,y2"):
        parse_geometric_prompt("cube")
    assert [model_kind(m) for m in ("sam3.pt", "sam2.1_b.pt", "/w/mobile_sam.pt", "yoloe-11s-seg.pt", "best.pt")] == [
        "sam3",
        "sam",
        "sam",
        "yolo",
        "yolo",
    ]
    with pytest.raises(ValueError, match="need a prompt"):
        UltralyticsMasker("sam2_b.pt", ["cube"])  # refused before any weights are looked for
    with pytest.raises(ValueError, match="not a segmentation model"):
        UltralyticsMasker("yolo11n.yaml", ["0"])  # a detector has no masks


def test_a_real_mobile_sam_runs_through_the_same_path(tmp_path):
    # untrained MobileSAM (its random weights saved under the name ultralytics expects): checks the API plumbing
    import torch
    from ultralytics.models.sam.build import build_mobile_sam

    torch.manual_seed(0)
    weights = tmp_path / "mobile_sam.pt"
    torch.save(build_mobile_sam().state_dict(), weights)
    masker = UltralyticsMasker(str(weights), prompt="box:2,4,8,10", imgsz=32, device="cpu")
    out = masker.mask_episode(np.stack([scene(t) for t in range(3)]))
    assert out.shape == (3, 32, 32) and out.dtype == bool
