"""Which world-model class a method name means: the one place train-wm, checkpoints and the benchmark look it up.

glam  GLAM (glam.py): IDM + target action encoder bound by the asymmetric KL (the paper's method)
clam  CLAM (clam.py): continuous IDM with the action decoder on the IDM, target data only
lapa  LAPA (lapa.py): VQ (NSVQ) latent actions by next-frame reconstruction on every source
The "-O" variants are the same classes with `input="masks"`.
"""

from __future__ import annotations


def model_classes() -> dict[str, type]:
    from glam_lerobot.world_model.clam import CLAM
    from glam_lerobot.world_model.glam import GLAM
    from glam_lerobot.world_model.lapa import LAPA

    return {"glam": GLAM, "clam": CLAM, "lapa": LAPA}


def model_class(method: str) -> type:
    classes = model_classes()
    if method not in classes:
        raise ValueError(f"unknown world-model method {method!r} (choose from {', '.join(classes)})")
    return classes[method]


def build_model(config):
    """The model for `config.model` ("glam" | "clam" | "lapa")."""
    return model_class(config.model)(config)
