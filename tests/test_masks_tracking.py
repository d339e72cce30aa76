"""Per-episode tracking: the object chosen in the first frame where it is found is the one masked to the end."""

import numpy as np

from glam_lerobot.masks.tracking import Detection, follow_targets, mask_iou

SHAPE = (16, 16)


def box(y: int, x: int, size: int = 4) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[y : y + size, x : x + size] = True
    return m


def test_a_more_confident_lookalike_appearing_later_does_not_steal_the_mask():
    # frame 0: one cube (id 1) is found. From frame 1 a second cube (id 2) shows up with a higher confidence.
    frames = [
        [Detection("cube", 0.6, box(2, 2), 1)],
        [Detection("cube", 0.9, box(10, 10), 2), Detection("cube", 0.5, box(2, 3), 1)],
        [Detection("cube", 0.95, box(10, 10), 2), Detection("cube", 0.4, box(3, 4), 1)],
    ]
    out = follow_targets(frames, ["cube"], SHAPE)
    assert out.shape == (3, *SHAPE) and out.dtype == bool
    for t, expected in enumerate([box(2, 2), box(2, 3), box(3, 4)]):
        np.testing.assert_array_equal(out[t], expected)


def test_frames_before_the_object_is_found_and_while_it_is_lost_stay_empty():
    frames = [
        [],  # nothing yet
        [Detection("bowl", 0.9, box(0, 0), 5)],  # another class: not a target
        [Detection("cube", 0.7, box(4, 4), 3)],  # first found here
        [],  # lost
        [Detection("cube", 0.7, box(5, 4), 3)],  # back with the same id
    ]
    out = follow_targets(frames, ["cube"], SHAPE)
    empty = ~out.reshape(len(out), -1).any(1)
    assert empty.tolist() == [True, True, False, True, False]
    np.testing.assert_array_equal(out[4], box(5, 4))


def test_a_renumbered_track_is_followed_by_overlap_and_a_far_one_is_not():
    frames = [
        [Detection("cube", 0.8, box(4, 4), 1)],
        # the tracker lost id 1 and re-numbered the object 7; a far-away cube got id 8
        [Detection("cube", 0.3, box(4, 5), 7), Detection("cube", 0.9, box(12, 12), 8)],
        [Detection("cube", 0.9, box(12, 12), 8)],  # only the far cube: no overlap with the last mask
        [Detection("cube", 0.3, box(4, 6), 7)],  # id 7 again
    ]
    out = follow_targets(frames, ["cube"], SHAPE)
    np.testing.assert_array_equal(out[1], box(4, 5))
    assert not out[2].any()
    np.testing.assert_array_equal(out[3], box(4, 6))


def test_two_instances_of_one_class_are_two_targets_without_ids():
    # SAM 3 style: no track ids; the two cubes swap confidence every frame but stay where they are.
    a, b = box(1, 1), box(9, 9)
    frames = [[Detection("cube", 0.9 - 0.1 * (t % 2), a), Detection("cube", 0.8 + 0.1 * (t % 2), b)] for t in range(4)]
    frames[2] = [Detection("cube", 0.9, a)]  # one cube occluded
    out = follow_targets(frames, ["cube", "cube"], SHAPE)
    assert all(mask_iou(out[t], a | b) == 1.0 for t in (0, 1, 3))
    np.testing.assert_array_equal(out[2], a)
    # a single target locks onto the more confident cube of frame 0 and keeps it
    one = follow_targets(frames, ["cube"], SHAPE)
    assert all((one[t] == a).all() for t in range(4))
