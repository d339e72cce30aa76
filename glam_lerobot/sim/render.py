"""Camera images and ground-truth object masks from MuJoCo's offscreen renderer (EGL, no shadows).

Masks come from segmentation rendering: each pixel names the geom it shows; a pixel belongs to an object's
mask when that geom's body is one of the object's bodies. They can be re-rendered later from a dataset's
`sim.qpos` column (render_object_masks), e.g. to mask a different set of objects.
"""

from __future__ import annotations

import mujoco
import numpy as np

from glam_lerobot import schema

GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)  # a plain int: comparing an array with the enum object goes element by element


class Cameras:
    """RGB frames and object masks for the scene's cameras at one square image size."""

    def __init__(
        self,
        model: mujoco.MjModel,
        image_size: int = schema.DEFAULT_IMAGE_SIZE,
        cameras: tuple[str, ...] = schema.CAMERAS,
    ):
        self.model, self.cameras, self.size = model, tuple(cameras), int(image_size)
        for cam in self.cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam) < 0:
                raise ValueError(f"the scene has no camera {cam!r}")
        # One renderer (one GL context) toggled between RGB and segmentation: switching between two EGL contexts
        # on every frame costs llvmpipe more than the rendering itself.
        self._renderer: mujoco.Renderer | None = None

    @property
    def renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.size, self.size)
        return self._renderer

    def rgb(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """{camera: (H, W, 3) uint8}."""
        r = self.renderer
        out = {}
        for cam in self.cameras:
            r.update_scene(data, camera=cam)
            out[cam] = r.render()  # a fresh array each call
        return out

    def masks(self, data: mujoco.MjData, bodies: list[int]) -> dict[str, np.ndarray]:
        """{camera: (H, W) bool}: pixels showing any geom of `bodies`."""
        r = self.renderer
        is_obj = np.isin(self.model.geom_bodyid, bodies)
        out = {}
        r.enable_segmentation_rendering()
        try:
            for cam in self.cameras:
                r.update_scene(data, camera=cam)
                seg = r.render()
                ids, types = seg[..., 0], seg[..., 1]
                out[cam] = (types == GEOM) & (ids >= 0) & is_obj[np.maximum(ids, 0)]
        finally:
            r.disable_segmentation_rendering()
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = None


def object_bodies(model: mujoco.MjModel, objects: list[str]) -> list[int]:
    """Body ids of the named objects and everything attached under them."""
    roots = []
    for name in objects:
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if bid < 0:
            raise ValueError(f"the scene has no object {name!r}")
        roots.append(bid)
    return [b for b in range(model.nbody) if any(_under(model, b, r) for r in roots)]


def _under(model: mujoco.MjModel, body: int, root: int) -> bool:
    while body > 0:
        if body == root:
            return True
        body = model.body_parentid[body]
    return False


def mask_frame(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the dataset's mask image: (H, W, 3) uint8 in {0, 255}, three identical channels."""
    return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)


def render_object_masks(
    task: str,
    embodiment: str,
    qpos: np.ndarray,
    objects: list[str],
    image_size: int = schema.DEFAULT_IMAGE_SIZE,
    cameras: tuple[str, ...] = schema.CAMERAS,
) -> dict[str, np.ndarray]:
    """Masks of `objects` for each recorded state: qpos (T, nq) -> {camera: (T, H, W) bool}."""
    from glam_lerobot.sim.world import compiled_model

    model = compiled_model(task, embodiment)
    qpos = np.atleast_2d(np.asarray(qpos, dtype=np.float64))
    if qpos.shape[1] != model.nq:
        raise ValueError(f"qpos has {qpos.shape[1]} columns but the {task}/{embodiment} scene has nq={model.nq}")
    data = mujoco.MjData(model)
    cams = Cameras(model, image_size, cameras)
    bodies = object_bodies(model, objects)
    out = {cam: np.zeros((len(qpos), cams.size, cams.size), bool) for cam in cams.cameras}
    try:
        for t, row in enumerate(qpos):
            data.qpos[:] = row
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for cam, m in cams.masks(data, bodies).items():
                out[cam][t] = m
    finally:
        cams.close()
    return out
