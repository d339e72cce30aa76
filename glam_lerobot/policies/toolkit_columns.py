"""Let the mixture's toolkit columns through LeRobot's policy preprocessor.

LeRobot's `batch_to_transition` keeps only `observation.*`, `action`, keys containing `_is_pad` and a fixed tuple
of metadata keys (`lerobot.processor.converters._COMPLEMENTARY_KEYS`); everything else in a training batch is
silently dropped before `policy.forward` sees it. The latent policy needs the per-frame latent chunk and the
"is this action real" flag, which by design live outside `observation.*`/`action*` (schema.py). Extending that
tuple (read at call time) keeps them for every pipeline LeRobot builds, including the ones it reloads from a
checkpoint when training resumes, which a custom `to_transition` argument would not cover.
"""

from __future__ import annotations

from glam_lerobot import schema

TOOLKIT_BATCH_KEYS = (
    schema.LATENT_CHUNK,
    schema.LATENT_CHUNK_IS_PAD,
    schema.ACTION_CHUNK,
    schema.ACTION_CHUNK_IS_PAD,
    schema.ACTION_IS_REAL,
    schema.SOURCE,
)


def keep_toolkit_columns() -> None:
    """Idempotent: add the mixture columns to LeRobot's complementary-data keys."""
    from lerobot.processor import converters

    missing = tuple(k for k in TOOLKIT_BATCH_KEYS if k not in converters._COMPLEMENTARY_KEYS)
    if missing:
        converters._COMPLEMENTARY_KEYS = (*converters._COMPLEMENTARY_KEYS, *missing)
