"""Pull a dataset or a world model at a revision into LeRobot's cache or a folder, and say where a folder came from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glam_lerobot.hub.client import (
    CODEBASE_TAG,
    PUSH_MARK,
    STAGING_PREFIX,
    HubError,
    _call,
    _endpoint,
    _explain,
    _local_files,
    _mb,
    _refs,
    _repo_type,
    api,
    lerobot_hub_cache,
)


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
