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
- A dataset that does not load with LeRobot, or whose meta/info.json and meta/episodes disagree with its data,
  is refused before anything is uploaded.
- The card (README.md) is rendered fresh from the data at push time (glam_lerobot.cards).

Pulled datasets land in LeRobot's revision-safe cache (`HF_LEROBOT_HOME/hub`, one snapshot per commit) unless a
root folder is given. Everything works against any Hub endpoint (HF_ENDPOINT), the public Hub when logged in, or
fully offline with `local_only=True` on what was pulled before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glam_lerobot import provenance, schema

CODEBASE_TAG = "v3.0"  # lerobot.datasets.utils.CODEBASE_VERSION, the tag LeRobot's default loads resolve
# Never pushed: LeRobot's staging images, huggingface_hub's download metadata, half-written outputs.
IGNORE = (".cache/", "images/", ".git/")
# A world-model training folder also holds resumable states (optimizer, RNG): the model repo gets the final model.
MODEL_IGNORE = ("checkpoints/",)
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIGS = ("config.json", "config.yaml")


class HubError(RuntimeError):
    """A push or pull that cannot go ahead; the message says what, where and what to do."""


@dataclass
class PushSummary:
    repo_id: str
    repo_type: str
    branch: str
    tags: list[str]
    commit: str | None  # None when nothing changed
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_sent: int = 0

    def lines(self) -> list[str]:
        where = f"{self.repo_type} {self.repo_id}@{self.branch}"
        if self.commit is None:
            return [f"{where}: already up to date ({self.unchanged} files), tags {', '.join(self.tags) or '-'}"]
        return [
            f"{where}: commit {self.commit[:12]}, tags {', '.join(self.tags) or '-'}",
            f"  {len(self.added)} added, {len(self.changed)} changed, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged; {_mb(self.bytes_sent)} sent",
        ]


@dataclass
class PullSummary:
    repo_id: str
    repo_type: str
    revision: str
    commit: str
    root: Path
    files: int
    bytes: int
    downloaded: int = 0  # files that came over the network (the rest were already local)
    downloaded_bytes: int = 0

    def lines(self) -> list[str]:
        return [
            f"{self.repo_type} {self.repo_id}@{self.revision} (commit {self.commit[:12]}) -> {self.root}",
            f"  {self.files} files, {_mb(self.bytes)}; downloaded {self.downloaded} files, "
            f"{_mb(self.downloaded_bytes)} (the rest were already here)",
        ]


@dataclass
class RevisionInfo:
    name: str
    kind: str  # "branch" | "tag"
    commit: str
    revision: str | None = None  # the revision name meta/glam.json gives (None for an original)
    parent: str | None = None
    columns_added: list[str] = field(default_factory=list)
    command: str | None = None
    episodes: int | None = None
    frames: int | None = None
    note: str = ""


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


# ---------------------------------------------------------------- the client
def api(token: str | None = None, endpoint: str | None = None):
    """An HfApi for the configured endpoint (HF_ENDPOINT, or the public Hub), with the validate-yaml shim."""
    from huggingface_hub import HfApi

    from glam_lerobot import hub_endpoint

    hub_endpoint.install()
    return HfApi(endpoint=endpoint, token=token)


def _endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def _explain(e: Exception, what: str, endpoint: str | None) -> HubError:
    """Turn a huggingface_hub / httpx error into one sentence a user can act on."""
    import httpx
    from huggingface_hub import errors

    at = _endpoint(endpoint)
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status == 401 or (isinstance(e, errors.HfHubHTTPError) and "Invalid credentials" in str(e)):
        return HubError(
            f"{what}: the Hub at {at} refused the token (401). Log in with `hf auth login` or set "
            "HF_TOKEN to a token with write access."
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(f"{what}: no such revision ({e.server_message or 'revision not found'})")
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(f"{what}: repository not found on {at} (or your token cannot see it)")
    if isinstance(e, errors.LocalEntryNotFoundError):
        return HubError(f"{what}: not in the local cache and downloads are off (local_only / HF_HUB_OFFLINE)")
    if isinstance(e, errors.EntryNotFoundError):
        return HubError(f"{what}: file not found ({e})")
    if isinstance(e, (httpx.TransportError, ConnectionError, errors.OfflineModeIsEnabled)):
        return HubError(
            f"{what}: lost the connection to {at} ({type(e).__name__}: {e}). Nothing half-done is "
            "visible on the Hub; run the same command again to finish (uploaded files are not resent)."
        )
    if isinstance(e, errors.HfHubHTTPError):
        return HubError(f"{what}: the Hub at {at} answered {status}: {e.server_message or e}")
    return HubError(f"{what}: {type(e).__name__}: {e}")


def _call(what: str, endpoint: str | None, fn, /, *args, **kwargs):
    import httpx
    from huggingface_hub import errors

    try:
        return fn(*args, **kwargs)
    except (
        errors.HfHubHTTPError,
        httpx.HTTPError,
        ConnectionError,
        errors.OfflineModeIsEnabled,
        errors.LocalEntryNotFoundError,
    ) as e:
        raise _explain(e, what, endpoint) from e


# ---------------------------------------------------------------- what a folder is
def folder_kind(folder: Path | str) -> str:
    """ "dataset" (meta/info.json) or "model" (model.safetensors + a config), else HubError."""
    folder = Path(folder)
    if (folder / "meta" / "info.json").is_file():
        return "dataset"
    if (folder / MODEL_WEIGHTS).is_file() and any((folder / c).is_file() for c in MODEL_CONFIGS):
        return "model"
    if not folder.is_dir():
        raise HubError(f"{folder}: no such folder")
    raise HubError(
        f"{folder}: neither a LeRobot dataset (meta/info.json) nor a world-model checkpoint "
        f"({MODEL_WEIGHTS} + {' or '.join(MODEL_CONFIGS)})"
    )


def validate_dataset(root: Path | str, repo_id: str = "local/validate") -> dict:
    """Load the dataset with LeRobot and check meta/info.json and meta/episodes against the data.

    Returns info.json. Raises HubError naming the file and field of the first problem.
    """
    root = Path(root)
    info_path = root / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise HubError(f"{info_path}: not readable as JSON ({e})") from e
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames"):
        if key not in info:
            raise HubError(f"{info_path}: missing field '{key}'")
    if not str(info["codebase_version"]).startswith("v3."):
        raise HubError(
            f"{info_path}: codebase_version {info['codebase_version']!r}; only LeRobot v3 datasets "
            "are supported (convert with lerobot's convert_dataset_v21_to_v30)"
        )
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        meta = LeRobotDatasetMetadata(repo_id, root=root)
    except Exception as e:
        raise HubError(f"{root}/meta: LeRobot cannot read the metadata: {type(e).__name__}: {e}") from e
    # Every file meta/episodes points at must be here: LeRobot would otherwise try to download it.
    for row in meta.episodes:
        ep = row["episode_index"]
        path = root / meta.get_data_file_path(ep)
        if not path.is_file():
            raise HubError(f"{path}: data of episode {ep} is missing (listed in meta/episodes)")
        for vkey in meta.video_keys:
            path = root / meta.get_video_file_path(ep, vkey)
            if not path.is_file():
                raise HubError(f"{path}: video of episode {ep} field '{vkey}' is missing")
    try:
        ds = LeRobotDataset(repo_id, root=root, download_videos=False, video_backend="pyav")  # no torchcodec probe
    except Exception as e:  # LeRobot raises many kinds; all mean "this folder does not load"
        raise HubError(f"{root}: LeRobot cannot load this dataset: {type(e).__name__}: {e}") from e
    episodes = ds.meta.episodes
    n_rows = len(ds.hf_dataset)
    if info["total_episodes"] != len(episodes):
        raise HubError(
            f"{info_path}: total_episodes is {info['total_episodes']} but meta/episodes lists {len(episodes)} episodes"
        )
    if info["total_frames"] != n_rows:
        raise HubError(f"{info_path}: total_frames is {info['total_frames']} but data/ holds {n_rows} frames")
    lengths = sum(int(x) for x in episodes["length"])
    if lengths != n_rows:
        raise HubError(f"{root}/meta/episodes: episode lengths add up to {lengths} but data/ holds {n_rows} frames")
    data_eps = {int(x) for x in ds.hf_dataset.unique("episode_index")}
    listed = {int(x) for x in episodes["episode_index"]}
    if data_eps != listed:
        raise HubError(
            f"{root}/data: episode_index values {sorted(data_eps ^ listed)[:5]} are in the data or in "
            "meta/episodes but not both"
        )
    columns = set(ds.hf_dataset.column_names)
    for key, ft in info["features"].items():
        if ft.get("dtype") != "video" and key not in columns:
            raise HubError(f"{info_path}: feature '{key}' has no column in data/")
    return info


# ---------------------------------------------------------------- hashing (to report what moved)
def _local_files(folder: Path, ignore: tuple[str, ...] = ()) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        skip = any(rel.startswith(i) for i in IGNORE + ignore) or rel.endswith((".tmp", ".lock"))
        if p.is_file() and not skip:
            out[rel] = p
    return out


def _git_blob_sha1(src: bytes | Path) -> str:
    """The oid the Hub gives a regular (non-LFS) file: git's blob sha1, hashed in chunks."""
    size = len(src) if isinstance(src, bytes) else src.stat().st_size
    h = hashlib.sha1(b"blob %d\0" % size)
    if isinstance(src, bytes):
        h.update(src)
    else:
        with open(src, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _remote_files(hf, repo_id: str, repo_type: str, revision: str) -> dict[str, tuple[str, bool]]:
    """path -> (oid, is_lfs) at `revision` (sha256 for LFS files, git sha1 otherwise); {} if it is absent."""
    from huggingface_hub import errors
    from huggingface_hub.hf_api import RepoFile

    try:
        tree = hf.list_repo_tree(repo_id, repo_type=repo_type, revision=revision, recursive=True)
        return {
            e.path: ((e.lfs.sha256, True) if e.lfs else (e.blob_id, False)) for e in tree if isinstance(e, RepoFile)
        }
    except errors.RevisionNotFoundError:
        return {}


def _refs(hf, repo_id: str, repo_type: str) -> tuple[dict[str, str], dict[str, str]]:
    refs = hf.list_repo_refs(repo_id, repo_type=repo_type)
    return {b.name: b.target_commit for b in refs.branches}, {t.name: t.target_commit for t in refs.tags}


# ---------------------------------------------------------------- push
def push(
    folder: Path | str,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    message: str | None = None,
) -> PushSummary:
    """Push a dataset or a world-model checkpoint folder (detected from its files)."""
    if folder_kind(folder) == "dataset":
        return push_dataset(folder, repo_id, revision, private=private, token=token, endpoint=endpoint, message=message)
    return push_model(folder, repo_id, revision, private=private, token=token, endpoint=endpoint, message=message)


def dataset_branch(glam: dict, revision: str | None) -> tuple[str, bool]:
    """(branch, derived) for a dataset whose meta/glam.json is `glam`, pushed with `--revision revision`."""
    parent = glam.get("parent")
    if revision == CODEBASE_TAG:
        raise HubError(f"{CODEBASE_TAG!r} is LeRobot's version tag, not a branch name; choose another --revision")
    if not parent:
        return revision or "main", False
    name = revision or glam.get("revision")
    if not name:
        raise HubError(
            "a derived dataset (meta/glam.json has a parent) needs a revision name: pass --revision "
            "or record `revision` in meta/glam.json"
        )
    parent_rev = parent.get("revision") if isinstance(parent, dict) else None
    if name in ("main", CODEBASE_TAG) or (parent_rev and name == parent_rev):
        raise HubError(
            f"a derived dataset goes to its own branch, never over its parent: revision {name!r} "
            f"is {'the parent revision' if name == parent_rev else 'reserved'}; choose a new name"
        )
    return name, True


def push_dataset(
    root: Path | str,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    message: str | None = None,
) -> PushSummary:
    """Validate, then push the LeRobot dataset at `root` as one commit (see the module docstring for branches)."""
    from glam_lerobot import cards

    root = Path(root)
    validate_dataset(root, repo_id)
    glam = provenance.read(root)
    branch, derived = dataset_branch(glam, revision)
    parent = glam.get("parent") if isinstance(glam.get("parent"), dict) else {}
    start = None
    if derived and parent.get("repo_id") == repo_id and parent.get("revision"):
        start = parent["revision"]  # the new branch starts at its parent: history shows the lineage
    if derived:
        tags = [branch]
    else:
        tags = [CODEBASE_TAG] if branch == "main" else [branch]
    card = cards.dataset_card_text(root, repo_id).encode()
    summary = _push_folder(
        root,
        repo_id,
        "dataset",
        branch,
        tags=tags,
        start=start,
        readme=card,
        private=private,
        token=token,
        endpoint=endpoint,
        message=message or _dataset_message(glam, branch, derived),
    )
    return summary


def _dataset_message(glam: dict, branch: str, derived: bool) -> str:
    if not derived:
        return f"Upload dataset ({glam.get('embodiment') or 'LeRobot'} {glam.get('task') or ''})".strip()
    step = (glam.get("history") or [{}])[-1]
    cols = step.get("columns") or []
    return f"Revision {branch}: " + (f"add {', '.join(cols)}" if cols else "derived dataset")


def push_model(
    folder: Path | str,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    message: str | None = None,
) -> PushSummary:
    """Push a world-model checkpoint folder (model.safetensors + config) to a model repo, with a model card."""
    from glam_lerobot import cards

    folder = Path(folder)
    if folder_kind(folder) != "model":
        raise HubError(f"{folder}: not a world-model checkpoint")
    config_path = next(folder / c for c in MODEL_CONFIGS if (folder / c).is_file())
    try:
        import yaml

        config = (
            json.loads(config_path.read_text())
            if config_path.suffix == ".json"
            else yaml.safe_load(config_path.read_text())
        )
    except Exception as e:
        raise HubError(f"{config_path}: not readable ({e})") from e
    from safetensors import safe_open

    try:
        with safe_open(str(folder / MODEL_WEIGHTS), "np") as f:
            f.keys()
    except Exception as e:
        raise HubError(f"{folder / MODEL_WEIGHTS}: not a readable safetensors file ({e})") from e
    branch = revision or "main"
    readme = None if (folder / "README.md").is_file() else cards.model_card_text(folder, config, repo_id).encode()
    return _push_folder(
        folder,
        repo_id,
        "model",
        branch,
        tags=[],
        start=None,
        readme=readme,
        private=private,
        token=token,
        endpoint=endpoint,
        message=message or "Upload GLAM world model",
    )


def _push_folder(
    folder: Path,
    repo_id: str,
    repo_type: str,
    branch: str,
    *,
    tags: list[str],
    start: str | None,
    readme: bytes | None,
    private: bool | None,
    token: str | None,
    endpoint: str | None,
    message: str,
) -> PushSummary:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    what = f"push {folder} to {repo_type} {repo_id}@{branch}"
    hf = api(token, endpoint)
    # Everything that can be checked is checked before the first byte moves.
    _call(what, endpoint, hf.whoami)
    _call(what, endpoint, hf.create_repo, repo_id, repo_type=repo_type, private=private, exist_ok=True)
    branches, _ = _call(what, endpoint, _refs, hf, repo_id, repo_type)
    if start is not None and start not in branches:
        _, tag_map = _refs(hf, repo_id, repo_type)
        if start not in tag_map:
            start = None  # the parent lives elsewhere (another repo or only locally): branch from main
    new_branch = branch not in branches
    base = start or "main"
    remote = _call(what, endpoint, _remote_files, hf, repo_id, repo_type, base if new_branch else branch)

    local = _local_files(folder, MODEL_IGNORE if repo_type == "model" else ())
    contents: dict[str, bytes | Path] = dict(local)
    if readme is not None:
        contents["README.md"] = readme
    summary = PushSummary(repo_id, repo_type, branch, tags, commit=None)
    additions = []
    for rel, src in contents.items():
        # CommitOperationAdd hashes the file (sha256) once; the git sha1 is only needed for small regular files.
        op = CommitOperationAdd(path_in_repo=rel, path_or_fileobj=src if isinstance(src, bytes) else str(src))
        old = remote.get(rel)
        if old is not None:
            oid, is_lfs = old
            if oid == (op.upload_info.sha256.hex() if is_lfs else _git_blob_sha1(src)):
                summary.unchanged += 1
                continue
        (summary.changed if old else summary.added).append(rel)
        summary.bytes_sent += op.upload_info.size
        additions.append(op)
    keep = set(contents) | {".gitattributes"}
    summary.deleted = sorted(p for p in remote if p not in keep)
    deletions = [CommitOperationDelete(path_in_repo=p) for p in summary.deleted]

    if additions:
        # LFS objects first, against a branch that already exists: a push that dies here leaves no trace.
        _call(
            what,
            endpoint,
            hf.preupload_lfs_files,
            repo_id,
            additions=additions,
            repo_type=repo_type,
            revision="main" if new_branch else branch,
        )
    staging = STAGING_PREFIX + branch
    if staging in branches:  # left by an earlier push of this revision that died (or could not clean up)
        _call(what, endpoint, hf.delete_branch, repo_id, branch=staging, repo_type=repo_type)
    if new_branch and (additions or deletions):
        # A new revision appears in one step: the commit lands on a staging branch, and only then does the
        # branch with the revision's name get created, at that commit. A push that dies half way leaves no
        # branch named like a finished revision, only the staging branch, which the next push removes.
        _call(what, endpoint, hf.create_branch, repo_id, branch=staging, revision=base, repo_type=repo_type)
        info = _call(
            what,
            endpoint,
            hf.create_commit,
            repo_id,
            operations=additions + deletions,
            commit_message=message,
            commit_description=PUSH_MARK,
            repo_type=repo_type,
            revision=staging,
        )
        _call(what, endpoint, hf.create_branch, repo_id, branch=branch, revision=info.oid, repo_type=repo_type)
        # the revision is complete; should this fail, `revisions` hides the leftover and the next push removes it
        with contextlib.suppress(Exception):
            hf.delete_branch(repo_id, branch=staging, repo_type=repo_type)
        summary.commit = info.oid
    elif new_branch:  # nothing differs from the start: the revision is its start commit
        _call(what, endpoint, hf.create_branch, repo_id, branch=branch, revision=base, repo_type=repo_type)
    elif additions or deletions:
        info = _call(
            what,
            endpoint,
            hf.create_commit,
            repo_id,
            operations=additions + deletions,
            commit_message=message,
            commit_description=PUSH_MARK,
            repo_type=repo_type,
            revision=branch,
        )
        summary.commit = info.oid
    for tag in tags:
        _retag(hf, repo_id, repo_type, tag, branch, what, endpoint)
    return summary


STAGING_PREFIX = "glam-staging--"  # where a new revision's commit lands before its branch exists
PUSH_MARK = "Pushed by glam-lerobot."  # the commit description of every push (pull checks the v3.0 tag by it)


def _retag(hf, repo_id: str, repo_type: str, tag: str, branch: str, what: str, endpoint: str | None) -> None:
    """Point `tag` at the head of `branch` (moving it if it pointed elsewhere, as LeRobot does with v3.0)."""
    branches, tags = _call(what, endpoint, _refs, hf, repo_id, repo_type)
    if tags.get(tag) == branches[branch]:
        return
    if tag in tags:
        _call(what, endpoint, hf.delete_tag, repo_id, tag=tag, repo_type=repo_type)
    _call(what, endpoint, hf.create_tag, repo_id, tag=tag, revision=branches[branch], repo_type=repo_type)


# ---------------------------------------------------------------- pull
def lerobot_hub_cache() -> Path:
    """LeRobot's revision-safe snapshot cache (read at call time: tests and users may point it elsewhere)."""
    from lerobot.utils import constants

    return Path(constants.HF_LEROBOT_HOME) / "hub"


def _repo_type(hf, repo_id: str, repo_type: str | None, what: str, endpoint: str | None) -> str:
    if repo_type:
        return repo_type
    from huggingface_hub import errors

    for kind in ("dataset", "model"):
        try:
            hf.repo_info(repo_id, repo_type=kind)
            return kind
        except errors.RepositoryNotFoundError:
            continue
        except Exception as e:
            raise _explain(e, what, endpoint) from e
    raise HubError(
        f"{what}: no dataset or model repository {repo_id} on {_endpoint(endpoint)} (or your token cannot see it)"
    )


def _missing_revision(hf, repo_id: str, repo_type: str, revision: str, what: str) -> HubError:
    try:
        branches, tags = _refs(hf, repo_id, repo_type)
        have = f"branches: {', '.join(sorted(branches)) or '-'}; tags: {', '.join(sorted(tags)) or '-'}"
    except Exception:
        have = "could not list its refs"
        branches = {}
    hint = ""
    if STAGING_PREFIX + revision in branches:
        hint = f"; a push of {revision!r} was interrupted before the revision appeared: run the same push again"
    return HubError(f"{what}: {repo_type} {repo_id} has no revision {revision!r} ({have}){hint}")


def _check_tag_current(hf, repo_id: str, what: str) -> None:
    """Refuse the v3.0 tag of a dataset whose main has a newer glam-lerobot push: the push died before it moved
    the tag, and the tag would give the previous data without a word."""
    try:
        branches, tags = _refs(hf, repo_id, "dataset")
    except Exception:
        return  # the download that follows reports an unreachable server
    if CODEBASE_TAG not in tags or "main" not in branches or branches["main"] == tags[CODEBASE_TAG]:
        return
    try:
        head = next(iter(hf.list_repo_commits(repo_id, repo_type="dataset", revision="main")))
    except Exception:
        return
    if PUSH_MARK in (head.message or ""):
        raise HubError(
            f"{what}: the {CODEBASE_TAG} tag of {repo_id} is behind main, whose last commit "
            f"({head.commit_id[:8]}, {head.title!r}) is a push that was interrupted before it moved the "
            f"tag: run the same push again (or pull --revision main)"
        )


def _check_revision_content(path: Path, repo_id: str, rev: str, what: str) -> None:
    """Refuse a pulled dataset revision whose meta/glam.json disagrees with its name or with its columns."""
    glam_path = path / "meta" / "glam.json"
    if not glam_path.is_file():
        return  # not a toolkit dataset: nothing recorded to check against
    glam = json.loads(glam_path.read_text())
    features = json.loads((path / "meta" / "info.json").read_text()).get("features", {})
    recorded = glam.get("revision")
    if recorded and rev not in (recorded, "main", CODEBASE_TAG) and not _looks_like_commit(rev):
        raise HubError(
            f"{what}: revision {rev!r} holds the dataset of revision {recorded!r} (meta/glam.json): a "
            "push that did not finish; push the revision again"
        )
    added = [c for step in glam.get("history") or [] for c in step.get("columns") or []]
    missing = [c for c in added if c not in features]
    if missing:
        raise HubError(
            f"{what}: meta/glam.json of {repo_id}@{rev} records the columns {missing} but meta/info.json "
            "does not have them: a half-written revision; push it again"
        )


def _looks_like_commit(rev: str) -> bool:
    return len(rev) >= 7 and all(ch in "0123456789abcdef" for ch in rev)


def pull(
    repo_id: str,
    revision: str | None = None,
    root: Path | str | None = None,
    *,
    repo_type: str | None = None,
    local_only: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> PullSummary:
    """Download a dataset (default revision: the `v3.0` tag) or model (default: main) at a revision.

    With `root`, files land there (files the revision does not have are removed, so a root never mixes two
    revisions); otherwise in the revision-safe cache. Returns where and what was pulled.
    """
    from huggingface_hub import errors, snapshot_download

    what = f"pull {repo_id}@{revision or 'default'}"
    hf = api(token, endpoint)
    if local_only:
        repo_type = repo_type or "dataset"
    else:
        repo_type = _repo_type(hf, repo_id, repo_type, what, endpoint)
    rev = revision or (CODEBASE_TAG if repo_type == "dataset" else "main")
    if repo_type == "dataset" and rev == CODEBASE_TAG and not local_only:
        _check_tag_current(hf, repo_id, what)
    kwargs: dict[str, Any] = dict(
        repo_id=repo_id, repo_type=repo_type, revision=rev, token=token, endpoint=endpoint, local_files_only=local_only
    )
    commit = None
    if root is not None:
        root = Path(root)
        if root.is_dir() and any(root.iterdir()) and not (root / ".cache" / "huggingface").is_dir():
            # pull removes files the revision does not have: never do that to a folder it did not create
            raise HubError(f"{what}: {root} is not empty and was not made by a pull; choose an empty folder")
        kwargs["local_dir"] = root
        store = root
        if not local_only:
            try:
                commit = hf.repo_info(repo_id, repo_type=repo_type, revision=rev).sha
            except errors.RevisionNotFoundError as e:
                raise _missing_revision(hf, repo_id, repo_type, rev, what) from e
            except Exception as e:
                raise _explain(e, what, endpoint) from e
    else:
        from huggingface_hub import constants

        cache = lerobot_hub_cache() if repo_type == "dataset" else Path(constants.HF_HUB_CACHE)
        kwargs["cache_dir"] = cache
        store = cache / f"{repo_type}s--{repo_id.replace('/', '--')}" / "blobs"
    before = _file_state(store)
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        path = Path(snapshot_download(**kwargs))
    except errors.RevisionNotFoundError as e:
        raise _missing_revision(hf, repo_id, repo_type, rev, what) from e
    except Exception as e:
        raise _explain(e, what, endpoint) from e
    finally:
        if quiet:
            enable_progress_bars()
    files = _local_files(path)
    if root is not None and not local_only:
        wanted = set(_call(what, endpoint, hf.list_repo_files, repo_id, repo_type=repo_type, revision=rev))
        for rel, p in files.items():
            if rel not in wanted:
                p.unlink()  # left over from another revision pulled into the same root
        files = {k: v for k, v in files.items() if k in wanted}
    if repo_type == "dataset" and not (path / "meta" / "info.json").is_file():
        raise HubError(f"{what}: {path} holds no meta/info.json: {repo_id} is not a LeRobot dataset")
    if repo_type == "dataset":
        _check_revision_content(path, repo_id, rev, what)
    after = _file_state(store)
    moved = [p for p, st in after.items() if before.get(p) != st]
    if root is not None and commit:
        (root / ORIGIN_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / ORIGIN_FILE).write_text(
            json.dumps(
                {
                    "repo_id": repo_id,
                    "repo_type": repo_type,
                    "revision": rev,
                    "commit": commit,
                    "endpoint": _endpoint(endpoint),
                }
            )
        )
    return PullSummary(
        repo_id,
        repo_type,
        rev,
        commit or (path.name if root is None else rev),
        path,
        len(files),
        sum(p.stat().st_size for p in files.values()),
        downloaded=len(moved),
        downloaded_bytes=sum(after[p][0] for p in moved),
    )


ORIGIN_FILE = Path(".cache") / "glam-lerobot" / "origin.json"  # under .cache/: never pushed, never cleaned


def origin(folder: Path | str) -> dict | None:
    """Where a pulled folder came from: {repo_id, repo_type, revision, commit}, or None for a local folder.

    Works for `pull --root` folders (recorded at pull time) and for snapshots in the Hugging Face cache (read
    from the cache layout `<type>s--<ns>--<name>/snapshots/<commit>` and its refs/). Provenance uses it to say
    which revision of a dataset or world model produced a column.
    """
    folder = Path(folder).resolve()
    recorded = folder / ORIGIN_FILE
    if recorded.is_file():
        return json.loads(recorded.read_text())
    if folder.parent.name != "snapshots":
        return None
    repo_dir = folder.parent.parent
    kind, _, name = repo_dir.name.partition("--")
    if kind not in ("datasets", "models", "spaces") or "--" not in name:
        return None
    refs_dir = repo_dir / "refs"
    names = (
        sorted(
            str(p.relative_to(refs_dir))
            for p in refs_dir.rglob("*")
            if p.is_file() and p.read_text().strip() == folder.name
        )
        if refs_dir.is_dir()
        else []
    )
    return {
        "repo_id": name.replace("--", "/", 1),
        "repo_type": kind[:-1],
        "revision": names[0] if names else None,
        "revisions": names,
        "commit": folder.name,
    }


def _file_state(folder: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of the real files under `folder` (to tell what a download actually moved)."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink() and ".cache" not in p.relative_to(folder).parts:
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def pull_dataset(
    repo_id: str,
    revision: str | None = None,
    root: Path | str | None = None,
    *,
    local_only: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> Path:
    """The local root of a Hub dataset at `revision`: pass it to `LeRobotDataset(repo_id, root=...)`."""
    return pull(
        repo_id,
        revision,
        root,
        repo_type="dataset",
        local_only=local_only,
        token=token,
        endpoint=endpoint,
        progress=progress,
    ).root


def pull_model(
    repo_id: str,
    revision: str | None = None,
    root: Path | str | None = None,
    *,
    local_only: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> Path:
    return pull(
        repo_id,
        revision,
        root,
        repo_type="model",
        local_only=local_only,
        token=token,
        endpoint=endpoint,
        progress=progress,
    ).root


# ---------------------------------------------------------------- revisions
def revisions(
    repo_id: str, *, repo_type: str | None = None, token: str | None = None, endpoint: str | None = None
) -> list[RevisionInfo]:
    """Every branch and tag of a repo with what it holds, read from its meta/glam.json and meta/info.json."""
    from huggingface_hub import errors, hf_hub_download

    what = f"revisions of {repo_id}"
    hf = api(token, endpoint)
    repo_type = _repo_type(hf, repo_id, repo_type, what, endpoint)
    branches, tags = _call(what, endpoint, _refs, hf, repo_id, repo_type)
    branches = {k: v for k, v in branches.items() if not k.startswith(STAGING_PREFIX)}  # unfinished pushes
    cache: dict[str, tuple[dict, dict]] = {}

    def meta_at(commit: str) -> tuple[dict, dict]:
        if commit not in cache:
            out = []
            for name in (schema.GLAM_META_PATH, "meta/info.json"):
                try:
                    p = hf_hub_download(
                        repo_id, name, repo_type=repo_type, revision=commit, token=token, endpoint=endpoint
                    )
                    out.append(json.loads(Path(p).read_text()))
                except errors.EntryNotFoundError:
                    out.append({})
                except Exception as e:
                    raise _explain(e, what, endpoint) from e
            cache[commit] = (out[0], out[1])
        return cache[commit]

    rows = []
    for kind, refs in (("branch", branches), ("tag", tags)):
        for name, commit in sorted(refs.items()):
            row = RevisionInfo(name=name, kind=kind, commit=commit)
            if repo_type == "dataset":
                glam, info = meta_at(commit)
                row.revision = glam.get("revision")
                parent = glam.get("parent")
                if isinstance(parent, dict):
                    row.parent = f"{parent.get('repo_id', '?')}@{parent.get('revision', '?')}"
                elif parent:
                    row.parent = str(parent)
                steps = glam.get("history") or []
                if steps:
                    last = steps[-1]
                    cols = last.get("columns") or last.get("columns_added") or []
                    row.columns_added = [cols] if isinstance(cols, str) else list(cols)
                    row.command = last.get("command")
                elif isinstance(glam.get("source"), dict):
                    row.command = glam["source"].get("command")
                if (
                    not row.columns_added
                    and isinstance(parent, dict)
                    and parent.get("repo_id") == repo_id
                    and parent.get("revision") in {**branches, **tags}
                ):
                    parent_info = meta_at({**branches, **tags}[parent["revision"]])[1]
                    row.columns_added = sorted(set(info.get("features", {})) - set(parent_info.get("features", {})))
                row.episodes, row.frames = info.get("total_episodes"), info.get("total_frames")
                if not info:
                    row.note = "no meta/info.json"
                elif glam.get("parent") and row.revision and row.revision != name and name != CODEBASE_TAG:
                    row.note = f"holds revision {row.revision}"
            if kind == "branch" and name != "main" and commit == branches.get("main") and not row.parent:
                row.note = "same commit as main: nothing pushed to it yet (an interrupted push? run it again)"
            rows.append(row)
    return rows


# ---------------------------------------------------------------- mixtures on the Hub
MIXTURE_FILE = "mixture.yaml"


def push_mixture(
    path: Path | str,
    repo_id: str,
    revision: str | None = None,
    *,
    path_in_repo: str = MIXTURE_FILE,
    token: str | None = None,
    endpoint: str | None = None,
) -> PushSummary:
    """Upload a mixture file into a small dataset-type repo, after checking every dataset@revision it names."""
    from huggingface_hub import CommitOperationAdd

    from glam_lerobot import mixture as mx

    mix = mx.load_mixture(path)
    local = [str(r) for r, _ in mix.datasets() if r.root is not None]
    if local:
        raise HubError(
            f"mixture {path}: {', '.join(local)} use local roots that collaborators cannot reach; push "
            "those datasets and refer to them by repo_id and revision"
        )
    hf = api(token, endpoint)
    what = f"push mixture {path} to {repo_id}"
    for ref, role in mix.datasets():  # every named revision must exist before anything is uploaded
        rev = ref.revision or CODEBASE_TAG
        branches, tags = _call(f"{what}: {role} {ref.repo_id}", endpoint, _refs, hf, ref.repo_id, "dataset")
        if rev not in branches and rev not in tags and not _is_commit(hf, ref.repo_id, rev):
            raise HubError(
                f"mixture {path}: {role} {ref.repo_id} has no revision {rev!r} on the Hub (branches: "
                f"{', '.join(sorted(branches)) or '-'}; tags: {', '.join(sorted(tags)) or '-'})"
            )
    branch = revision or "main"
    _call(what, endpoint, hf.create_repo, repo_id, repo_type="dataset", exist_ok=True)
    branches, _ = _call(what, endpoint, _refs, hf, repo_id, "dataset")
    if branch not in branches:
        _call(what, endpoint, hf.create_branch, repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    data = mx.yaml.safe_dump(mix.to_dict(), sort_keys=False).encode()
    info = _call(
        what,
        endpoint,
        hf.create_commit,
        repo_id,
        repo_type="dataset",
        revision=branch,
        operations=[CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=data)],
        commit_message=f"Mixture {mix.name}",
    )
    return PushSummary(repo_id, "dataset", branch, [], info.oid, added=[path_in_repo], bytes_sent=len(data))


def _is_commit(hf, repo_id: str, rev: str) -> bool:
    if len(rev) != 40:
        return False
    try:
        hf.repo_info(repo_id, repo_type="dataset", revision=rev)
        return True
    except Exception:
        return False


def pull_mixture(
    repo_id: str,
    revision: str | None = None,
    dest: Path | str | None = None,
    *,
    path_in_repo: str = MIXTURE_FILE,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download a mixture file from a repo (to `dest`, or the HF cache) and check that it parses."""
    from huggingface_hub import hf_hub_download

    from glam_lerobot import mixture as mx

    what = f"pull mixture {repo_id}@{revision or 'main'}:{path_in_repo}"
    api(token, endpoint)
    p = Path(
        _call(
            what,
            endpoint,
            hf_hub_download,
            repo_id,
            path_in_repo,
            repo_type="dataset",
            revision=revision,
            token=token,
            endpoint=endpoint,
        )
    )
    if dest is not None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
        p = dest
    mx.load_mixture(p)
    return p


def logged_in(token: str | None = None) -> str | None:
    """The user name the configured token belongs to, or None (offline, or no token)."""
    if os.environ.get("HF_HUB_OFFLINE"):
        return None
    try:
        return api(token).whoami().get("name")
    except Exception:
        return None
