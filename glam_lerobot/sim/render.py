"""Camera images and ground-truth object masks from MuJoCo's offscreen renderer (EGL, no shadows).

Masks come from segmentation rendering: each pixel's colour encodes the scene geom it shows; a pixel belongs to
an object's mask when that geom's body is one of the object's bodies. They can be re-rendered later from a
dataset's `sim.qpos` column (render_object_masks), e.g. to mask a different set of objects.

Rendering is most of a recording step's cost, and at 96 px llvmpipe's cost is per call, not per pixel, so this
module drives MuJoCo's rendering functions itself rather than through mujoco.Renderer: one GL context for RGB and
segmentation (switching contexts per frame costs more than drawing), all views of a step drawn into one
framebuffer and read back once, and a segmentation read that maps the encoded ids through a lookup table of
booleans instead of mujoco.Renderer's int32 (object id, type) image. Two 96 px cameras with masks, alone: 2.4 ->
1.5-1.9 ms per step on one core; in the whole recording loop 1.05-1.18x (benchmarks/bench_sim.py). The masks equal
mujoco.Renderer's; RGB differs in under 0.1% of the pixels, edges rasterised at another framebuffer offset
(tests/test_sim.py).
"""

from __future__ import annotations

import mujoco
import numpy as np

from glam_lerobot import schema

GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)  # a plain int: comparing an array with the enum object goes element by element
_SEGMENT = (mujoco.mjtRndFlag.mjRND_SEGMENT, mujoco.mjtRndFlag.mjRND_IDCOLOR)


class Cameras:
    """RGB frames and object masks for the scene's cameras at one square image size."""

    def __init__(
        self,
        model: mujoco.MjModel,
        image_size: int = schema.DEFAULT_IMAGE_SIZE,
        cameras: tuple[str, ...] = schema.CAMERAS,
    ):
        self.model, self.cameras, self.size = model, tuple(cameras), int(image_size)
        self._camera_ids = {}
        for cam in self.cameras:
            cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)
            if cid < 0:
                raise ValueError(f"the scene has no camera {cam!r}")
            self._camera_ids[cam] = cid
        # the offscreen framebuffer holds every view side by side: RGB row and segmentation row
        vis = model.vis.global_
        vis.offwidth = max(vis.offwidth, self.size * len(self.cameras))
        vis.offheight = max(vis.offheight, self.size * 2)
        self._gl = None  # the GL context is made on first use, in the process that renders
        self._objects: dict[tuple, np.ndarray] = {}  # bodies -> which geoms belong to them

    def _start(self) -> None:
        self._gl = mujoco.GLContext(self.size, self.size)
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(self.model, maxgeom=1000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._pixels = np.empty((2 * self.size, len(self.cameras) * self.size, 3), np.uint8)

    def render(self, data: mujoco.MjData, bodies: list[int] | None = None, rgb: bool = True):
        """({camera: (H, W, 3) uint8} or None, {camera: (H, W) bool} or None): RGB of every camera (unless
        rgb=False) and, when `bodies` is given, the mask of the pixels showing any geom of those bodies.

        All views are drawn side by side into one framebuffer (RGB in the bottom row, segmentation above) and
        read back with one call: each read waits for llvmpipe to finish, so reading once per step instead of once
        per view saves a fifth of the rendering time."""
        if self._gl is None:
            self._start()
        self._gl.make_current()
        size = self.size
        rows = [False] * rgb + [True] * (bodies is not None)  # segment? per row of views
        if not rows:
            raise ValueError("render: nothing to draw (rgb=False and no bodies to mask)")
        is_obj = None
        if bodies is not None:
            key = tuple(bodies)
            if key not in self._objects:
                self._objects[key] = np.isin(self.model.geom_bodyid, bodies)
            is_obj = self._objects[key]
        lookups = {}
        for row, segment in enumerate(rows):
            for col, cam in enumerate(self.cameras):
                self._camera.fixedcamid = self._camera_ids[cam]
                mujoco.mjv_updateScene(
                    self.model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
                )
                for flag in _SEGMENT:
                    self._scene.flags[flag] = segment
                mujoco.mjr_render(mujoco.MjrRect(col * size, row * size, size, size), self._scene, self._ctx)
                if segment:
                    lookups[cam] = self._segment_lookup(is_obj)
        pixels = self._pixels[: len(rows) * size]
        mujoco.mjr_readPixels(pixels, None, mujoco.MjrRect(0, 0, len(self.cameras) * size, len(rows) * size), self._ctx)
        pixels = pixels[::-1]  # OpenGL reads the bottom row first: flip once, so the top view row comes first
        views = {
            (segment, cam): pixels[
                (len(rows) - 1 - row) * size : (len(rows) - row) * size, col * size : (col + 1) * size
            ]
            for row, segment in enumerate(rows)
            for col, cam in enumerate(self.cameras)
        }
        images = {cam: views[False, cam].copy() for cam in self.cameras} if rgb else None
        if bodies is None:
            return images, None
        masks = {}
        for cam, lookup in lookups.items():
            # a pixel's colour is (segid + 1) in base 256, 0 for the background; segid indexes the scene's geoms
            view = views[True, cam]
            ids = view[..., 0].astype(np.int32) | (view[..., 1].astype(np.int32) << 8)
            masks[cam] = lookup[np.minimum(ids, len(lookup) - 1)]
        return images, masks

    def _segment_lookup(self, is_obj: np.ndarray) -> np.ndarray:
        """Per segmentation colour of the scene just drawn: does it show an object geom?"""
        n = self._scene.ngeom
        lookup = np.zeros(n + 1, bool)
        for g in self._scene.geoms[:n]:
            if g.segid >= 0 and g.objtype == GEOM and g.objid >= 0:
                lookup[g.segid + 1] = is_obj[g.objid]
        return lookup

    def rgb(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """{camera: (H, W, 3) uint8}, a fresh array per camera."""
        return self.render(data)[0]

    def masks(self, data: mujoco.MjData, bodies: list[int]) -> dict[str, np.ndarray]:
        """{camera: (H, W) bool}: pixels showing any geom of `bodies`."""
        return self.render(data, bodies, rgb=False)[1]

    def close(self) -> None:
        if self._gl is not None:
            self._gl.make_current()
            self._ctx.free()
            self._gl.free()
        self._gl = None


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
