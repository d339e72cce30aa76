"""Push and pull datasets and world-model checkpoints to and from the Hugging Face Hub, at revisions.

Built on huggingface_hub (one `create_commit` per push) and LeRobot's own loading, with these rules:

- An original dataset goes to `main` (or `--revision BRANCH`) and LeRobot's `v3.0` tag is moved onto it, as
  `LeRobotDataset.push_to_hub` does, so that a default `LeRobotDataset(repo_id)` loads it.
- A derived dataset (meta/glam.json names a `parent`: masks added, latents added, a merged mixture) goes to its
  own branch AND a tag, both named after its revision, never onto its parent's branch; `v3.0` is not touched, so
  the parent stays byte-identical and default loads keep getting it.
- A push is one commit: LFS files are uploaded first, then one commit adds, changes and deletes files together,
  so a revision is never a mix of old and new files. A push that dies half-way leaves the branch as it was (a
  new branch is created just before the commit: if the push dies between the two it holds its parent's commit,
  and `revisions` flags it); running it again completes it, and files already uploaded are not sent twice. Files on the branch that the local folder no longer has are deleted (LeRobot's
  push_to_hub never deletes, which leaves stale shards that LeRobot then loads).
- A dataset that does not load with LeRobot, or that fails a check of glam_lerobot.validate (meta/info.json and
  meta/episodes against the data, timestamps, NaN, stats, ...), is refused before anything is uploaded.
- The card (README.md) is rendered fresh from the data at push time (glam_lerobot.cards).

Pulled datasets land in LeRobot's revision-safe cache (`HF_LEROBOT_HOME/hub`, one snapshot per commit) unless a
root folder is given. Everything works against any Hub endpoint (HF_ENDPOINT), the public Hub when logged in, or
fully offline with `local_only=True` on what was pulled before.
"""

from glam_lerobot.hub.client import (
    CODEBASE_TAG,
    IGNORE,
    MODEL_CONFIGS,
    MODEL_IGNORE,
    MODEL_WEIGHTS,
    PUSH_MARK,
    STAGING_PREFIX,
    HubError,
    api,
    folder_kind,
    lerobot_hub_cache,
    logged_in,
)
from glam_lerobot.hub.mixtures import MIXTURE_FILE, pull_mixture, push_mixture
from glam_lerobot.hub.pull import ORIGIN_FILE, PullSummary, origin, pull, pull_dataset, pull_model
from glam_lerobot.hub.push import PushSummary, dataset_branch, push, push_dataset, push_model, validate_dataset
from glam_lerobot.hub.revisions import RevisionInfo, revisions

__all__ = [
    "CODEBASE_TAG",
    "IGNORE",
    "MIXTURE_FILE",
    "MODEL_CONFIGS",
    "MODEL_IGNORE",
    "MODEL_WEIGHTS",
    "ORIGIN_FILE",
    "PUSH_MARK",
    "STAGING_PREFIX",
    "HubError",
    "PullSummary",
    "PushSummary",
    "RevisionInfo",
    "api",
    "dataset_branch",
    "folder_kind",
    "lerobot_hub_cache",
    "logged_in",
    "origin",
    "pull",
    "pull_dataset",
    "pull_mixture",
    "pull_model",
    "push",
    "push_dataset",
    "push_mixture",
    "push_model",
    "revisions",
    "validate_dataset",
]
