"""The canonical columns every glam-lerobot dataset uses, decided once, here.

Every source (Kinova teleop, Kinova sim, UMI, robomimic/ALOHA HDF5) is written with these names so that any two
datasets mix. LeRobot gives meaning to two prefixes: `observation.*` columns are policy inputs (and get a time
axis when a policy asks for observation history), `action*` columns are policy outputs. Toolkit columns (masks,
latents, mixture bookkeeping, simulator state) therefore never start with either prefix.
"""

from __future__ import annotations

CAMERAS = ("overhead", "front")
DEFAULT_FPS = 10
DEFAULT_IMAGE_SIZE = 96  # square frames in the simulator; ingest keeps the recorded size unless told otherwise

ARM_JOINTS = 7  # Kinova Gen3
STATE_DIM_PER_ARM = ARM_JOINTS + 1  # joint positions + gripper opening
EE_POSE_DIM_PER_ARM = 3 + 6 + 1  # position, rotation as 6D (first two columns of the matrix), gripper opening
EE_ROTATION_OFFSET = 3  # the 6D rotation sits at [3, 9) of each arm's block

# --- policy-facing columns (LeRobot conventions) ---
IMAGE = "observation.images.{camera}"  # video (H, W, 3) uint8
EE_POSE = "observation.ee_pose"  # float32 (10 * arms,)
STATE = "observation.state"  # float32 (8 * arms,), target robot only
ACTION = "action"  # float32 (8 * arms,): joint position targets + gripper command in [0, 1] (1 = closed)

# --- toolkit columns ---
MASK = "mask.{camera}"  # lossless image (H, W, 3) uint8 in {0, 255}, 3 identical channels: the manipulated object(s)
LATENT = "latent.action"  # float32 (d,): IDM posterior mean for the transition t -> t+1 (Eq. 7)
LATENT_IS_PAD = "latent.is_pad"  # float32 (1,): 1 on an episode's last frame (no next frame: latent repeats t-1)
LATENT_CHUNK = "latent.chunk"  # float32 (H * d,): latents t .. t+H-1 flattened, zero past the episode end
LATENT_CHUNK_IS_PAD = "latent.chunk_is_pad"  # float32 (H,): 1 where the chunk runs past the episode end
# float32 (H * A,) / (H,): actions t .. t+H-1 of the episode, exactly what LeRobot's delta query on `action` returns
# (past the end: the last action repeated, pad 1). Policies read it instead of that query, which LeRobot 0.6.1
# answers by converting every column of H rows (~55% of a training sample).
ACTION_CHUNK = "chunk.action"
ACTION_CHUNK_IS_PAD = "chunk.action_is_pad"
SOURCE = "mixture.source"  # int64 (1,): index into the mixture's list of datasets (meta/glam.json)
ACTION_IS_REAL = "mixture.action_is_real"  # float32 (1,): 1 for target-robot frames, 0 where `action` is filler
SIM_QPOS = "sim.qpos"  # float32 (nq,): full simulator state, so ground-truth masks can be re-rendered later

# Non-LeRobot metadata (embodiment, task, provenance, parent revision, producing model) lives beside
# meta/info.json in this file, so LeRobot's own DatasetInfo never sees unknown keys.
GLAM_META_PATH = "meta/glam.json"

# Gripper opening convention everywhere: metres between the fingertips for the UMI and the 2F-85 alike.
GRIPPER_MAX_OPENING = 0.085


def image_key(camera: str) -> str:
    return IMAGE.format(camera=camera)


def mask_key(camera: str) -> str:
    return MASK.format(camera=camera)


def _names(prefix: str, parts: list[str], arms: int) -> list[str]:
    if arms == 1:
        return [f"{prefix}{p}" for p in parts]
    return [f"arm{a}.{prefix}{p}" for a in range(arms) for p in parts]


def ee_pose_names(arms: int = 1) -> list[str]:
    return _names("", ["x", "y", "z", "r00", "r10", "r20", "r01", "r11", "r21", "gripper"], arms)


def joint_names(arms: int = 1) -> list[str]:
    return _names("", [f"joint_{i + 1}" for i in range(ARM_JOINTS)] + ["gripper"], arms)


def features(
    *,
    arms: int = 1,
    image_size: tuple[int, int] = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE),
    cameras: tuple[str, ...] = CAMERAS,
    robot: bool = True,
    masks: bool = False,
    sim_nq: int | None = None,
) -> dict[str, dict]:
    """LeRobot `features` for one source. `robot=False` (UMI, videos) leaves out state and action."""
    h, w = image_size
    feats: dict[str, dict] = {}
    for cam in cameras:
        feats[image_key(cam)] = {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
    feats[EE_POSE] = {"dtype": "float32", "shape": (EE_POSE_DIM_PER_ARM * arms,), "names": ee_pose_names(arms)}
    if robot:
        feats[STATE] = {"dtype": "float32", "shape": (STATE_DIM_PER_ARM * arms,), "names": joint_names(arms)}
        feats[ACTION] = {"dtype": "float32", "shape": (STATE_DIM_PER_ARM * arms,), "names": joint_names(arms)}
    if masks:
        feats.update(mask_features(image_size, cameras))
    if sim_nq is not None:
        feats[SIM_QPOS] = {"dtype": "float32", "shape": (sim_nq,), "names": None}
    return feats


def mask_features(image_size: tuple[int, int], cameras: tuple[str, ...] = CAMERAS) -> dict[str, dict]:
    # Three identical channels, not one: LeRobot 0.6.1 cannot store a (H, W, 1) uint8 image (add_frame's PNG writer
    # takes single-channel images only as uint16/float32 depth, `datasets.Image` cannot encode (H, W, 1) arrays in
    # add_features, and image stats are always computed on RGB). As RGB, masks write, read, get stats and merge
    # with LeRobot's own tools, and PNG keeps them binary. Readers take channel 0.
    h, w = image_size
    return {
        mask_key(cam): {"dtype": "image", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
        for cam in cameras
    }


def ee_rotation_dims(arms: int = 1) -> list[int]:
    """Indices of the 6D rotation inside `observation.ee_pose`.

    Its entries are unit-vector components, already on a common [-1, 1] scale: normalisers leave them as they are.
    Standardising them per dimension blows up components that one source never moves (the UMI never tilts; the
    Kinova's tilt only wobbles by servo error, std ~0.013), so the wobble becomes the largest "motion" signal.
    """
    return [a * EE_POSE_DIM_PER_ARM + EE_ROTATION_OFFSET + k for a in range(arms) for k in range(6)]


def is_toolkit_column(key: str) -> bool:
    """True for columns LeRobot policies must not treat as inputs or outputs."""
    return not (key.startswith("observation.") or key.startswith("action"))


# The stored `action` is absolute (joint position targets), as the robot takes it. A latent action describes a
# transition, not a place, so the world model and the policies decode *relative* actions: joint targets minus
# the current joint positions, with the gripper command kept absolute. These two functions are the only place
# that conversion is written down.
def relative_action(action, state, arms: int = 1):
    """(..., 8*arms) absolute action and state -> relative action (joint deltas, absolute gripper)."""
    rel = action.copy() if hasattr(action, "copy") else action.clone()
    for a in range(arms):
        joints = slice(a * STATE_DIM_PER_ARM, a * STATE_DIM_PER_ARM + ARM_JOINTS)
        rel[..., joints] = action[..., joints] - state[..., joints]
    return rel


def absolute_action(relative, state, arms: int = 1):
    """Inverse of `relative_action`, for the state the robot is in when the action is applied."""
    out = relative.copy() if hasattr(relative, "copy") else relative.clone()
    for a in range(arms):
        joints = slice(a * STATE_DIM_PER_ARM, a * STATE_DIM_PER_ARM + ARM_JOINTS)
        out[..., joints] = relative[..., joints] + state[..., joints]
    return out
