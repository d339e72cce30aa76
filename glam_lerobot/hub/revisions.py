"""List a repository's revisions with what each derived revision added (meta/glam.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from glam_lerobot import schema
from glam_lerobot.hub.client import (
    CODEBASE_TAG,
    STAGING_PREFIX,
    _call,
    _explain,
    _refs,
    _repo_type,
    api,
)


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
                    row.parent = f"{parent.get('repo_id', '?')}@{parent.get('revision', '?')}" + (
                        f" ({parent['commit'][:12]})" if parent.get("commit") else ""
                    )
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
