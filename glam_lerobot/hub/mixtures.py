"""Mixture files on the Hub: a mixture pins every dataset it names to a commit, so it loads the same later."""

from __future__ import annotations

from pathlib import Path

from glam_lerobot.hub.client import (
    CODEBASE_TAG,
    HubError,
    _call,
    _refs,
    api,
)
from glam_lerobot.hub.push import PushSummary

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
