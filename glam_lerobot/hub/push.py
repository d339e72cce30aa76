"""Push a dataset or a world-model folder as one commit on its own revision (the rules: glam_lerobot.hub)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from glam_lerobot import provenance
from glam_lerobot.hub.client import (
    CODEBASE_TAG,
    MODEL_CONFIGS,
    MODEL_IGNORE,
    MODEL_WEIGHTS,
    PUSH_MARK,
    STAGING_PREFIX,
    HubError,
    _call,
    _git_blob_sha1,
    _local_files,
    _mb,
    _refs,
    _remote_files,
    api,
    folder_kind,
)
from glam_lerobot.schema import GLAM_META_PATH


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
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        where = f"{self.repo_type} {self.repo_id}@{self.branch}"
        notes = [f"  note: {n}" for n in self.notes]
        if self.commit is None:
            return [f"{where}: already up to date ({self.unchanged} files), tags {', '.join(self.tags) or '-'}", *notes]
        return [
            f"{where}: commit {self.commit[:12]}, tags {', '.join(self.tags) or '-'}",
            f"  {len(self.added)} added, {len(self.changed)} changed, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged; {_mb(self.bytes_sent)} sent",
            *notes,
        ]


def validate_dataset(root: Path | str, repo_id: str = "local/validate") -> dict:
    """The pre-push check: every file meta/episodes names is here, LeRobot loads the dataset, and the checks of
    glam_lerobot.validate (totals, indices, timestamps, NaN, stats, ...) find no FAIL.

    Returns info.json. Raises HubError naming the file and field of the first problems.
    """
    from glam_lerobot import validate

    root = Path(root)
    try:
        report = validate.validate(root)
    except FileNotFoundError as e:
        raise HubError(str(e)) from e
    meta_failures = [r for r in report.failed if r.check == "meta"]
    if meta_failures:  # info.json unreadable, incomplete or not v3: LeRobot cannot even read the metadata
        raise HubError(f"{root}: {meta_failures[0].message}")
    info = json.loads((root / "meta" / "info.json").read_text())
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
        LeRobotDataset(repo_id, root=root, download_videos=False, video_backend="pyav")  # no torchcodec probe
    except Exception as e:  # LeRobot raises many kinds; all mean "this folder does not load"
        raise HubError(f"{root}: LeRobot cannot load this dataset: {type(e).__name__}: {e}") from e
    if report.failed:
        raise HubError(
            f"{root}: {len(report.failed)} check(s) failed (see `glam-lerobot validate {root}`): "
            + report.first_failures()
        )
    return info


def push(
    folder: Path | str,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    message: str | None = None,
    executor=None,
) -> PushSummary:
    """Push a dataset or a world-model checkpoint folder (detected from its files). `executor` (a local one
    with --tasks, or Ray) pre-uploads a dataset's files in parallel tasks before the one commit."""
    if folder_kind(folder) == "dataset":
        return push_dataset(
            folder,
            repo_id,
            revision,
            private=private,
            token=token,
            endpoint=endpoint,
            message=message,
            executor=executor,
        )
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
    executor=None,
) -> PushSummary:
    """Validate, then push the LeRobot dataset at `root` as one commit (see the module docstring for branches)."""
    from glam_lerobot import cards

    root = Path(root)
    validate_dataset(root, repo_id)
    glam = provenance.read(root)
    branch, derived = dataset_branch(glam, revision)
    parent = glam.get("parent") if isinstance(glam.get("parent"), dict) else {}
    notes, overrides = [], {}
    if derived:
        hub_parent, note = _parent_on_hub(root, repo_id, parent, token, endpoint)
        if hub_parent is not None:  # what a collaborator can follow: this repo, the revision, its commit now
            glam = {**glam, "parent": hub_parent}
            parent = hub_parent
            overrides[GLAM_META_PATH] = (json.dumps(glam, indent=2, default=str) + "\n").encode()
        if note:
            notes.append(note)
    start = None
    if derived and parent.get("repo_id") == repo_id and parent.get("revision"):
        start = parent["revision"]  # the new branch starts at its parent: history shows the lineage
    if derived:
        tags = [branch]
    else:
        tags = [CODEBASE_TAG] if branch == "main" else [branch]
    overrides["README.md"] = cards.dataset_card_text(root, repo_id, glam=glam).encode()
    summary = _push_folder(
        root,
        repo_id,
        "dataset",
        branch,
        tags=tags,
        start=start,
        overrides=overrides,
        private=private,
        token=token,
        endpoint=endpoint,
        message=message or _dataset_message(glam, branch, derived),
        executor=executor,
    )
    summary.notes += notes
    return summary


def _parent_on_hub(root: Path, repo_id: str, parent: dict, token, endpoint) -> tuple[dict | None, str | None]:
    """The parent of a derived dataset as it lives in `repo_id` on the Hub: {repo_id, revision, commit}, so that a
    collaborator finds the exact parent (a local name or path, or a moving `main`, cannot be followed).

    Only a parent named locally (`local/...`) or already in `repo_id` is looked up there; its meta/info.json must be
    the one the local parent has, else the parent is left as recorded with a note saying to push it first."""
    name, rev = str(parent.get("repo_id") or ""), parent.get("revision") or "main"
    if parent.get("commit") or not (name.startswith("local/") or name == repo_id):
        return None, None
    what = f"look up the parent of {root} in {repo_id}"
    hf = api(token, endpoint)
    commit = None
    if _call(what, endpoint, hf.repo_exists, repo_id, repo_type="dataset"):  # a new repo holds no parent yet
        branches, tags = _call(what, endpoint, _refs, hf, repo_id, "dataset")
        commit = {**branches, **tags}.get(rev)
    local_info = Path(parent.get("root") or "") / "meta" / "info.json"
    if commit is not None and local_info.is_file():
        remote = _call(what, endpoint, _remote_files, hf, repo_id, "dataset", commit)
        if remote.get("meta/info.json", (None,))[0] != _git_blob_sha1(local_info):
            commit = None  # that revision is another dataset than the local parent
    if commit is None:
        return None, (
            f"the parent {name}@{rev} ({parent.get('root') or 'no local path'}) is not on {repo_id}: push it first "
            f"(`glam-lerobot push {parent.get('root') or 'PARENT'} {repo_id}`) so that collaborators can follow it"
        )
    return {
        "repo_id": repo_id,
        "revision": rev,
        "commit": commit,
        "local": {"repo_id": name, "root": parent.get("root")},
    }, None


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
    card = None if (folder / "README.md").is_file() else cards.model_card_text(folder, config, repo_id).encode()
    return _push_folder(
        folder,
        repo_id,
        "model",
        branch,
        tags=[],
        start=None,
        overrides={"README.md": card} if card else {},
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
    overrides: dict[str, bytes],
    private: bool | None,
    token: str | None,
    endpoint: str | None,
    message: str,
    executor=None,
) -> PushSummary:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if executor is not None and not executor.waits:
        raise HubError(
            "push commits once every file is uploaded, in this command: pre-upload with --executor local --tasks N "
            "or --executor ray, not slurm"
        )

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
    contents.update(overrides)  # files whose pushed content differs from the local one (the card, provenance)
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
        revision = "main" if new_branch else branch
        files = [
            (op.path_in_repo, str(contents[op.path_in_repo]))
            for op in additions
            if isinstance(contents[op.path_in_repo], Path)
        ]
        if executor is not None and (executor.kind != "local" or executor.tasks) and files:
            # in parallel tasks, as LeRobot's port scripts do; the commit below finds the objects already there
            _call(what, endpoint, PreUpload(repo_id, repo_type, revision, files, token, endpoint).run_on, executor)
        _call(
            what, endpoint, hf.preupload_lfs_files, repo_id, additions=additions, repo_type=repo_type, revision=revision
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


PRE_UPLOAD_FILES_PER_TASK = 200  # a Ray task's share when --tasks is not given


@dataclass
class PreUpload:
    """A push's LFS uploads as datatrove tasks: task r hashes and uploads its share of the files."""

    repo_id: str
    repo_type: str
    revision: str
    files: list[tuple[str, str]]  # (path in the repo, local path)
    token: str | None
    endpoint: str | None
    bounds: list[int] = field(default_factory=list)

    def run_on(self, executor) -> None:
        import tempfile

        from glam_lerobot import executors

        tasks = executors.task_count(executor, len(self.files), 1, None, PRE_UPLOAD_FILES_PER_TASK)
        self.bounds = executors.shard_bounds(len(self.files), tasks)
        with tempfile.TemporaryDirectory(prefix="glam-push-") as logs:  # 0700: the pickled task holds the token
            executors.run(executor, self.task, tasks, tasks, Path(logs), job_name="push")

    def task(self, rank: int) -> None:
        from huggingface_hub import CommitOperationAdd

        share = self.files[self.bounds[rank] : self.bounds[rank + 1]]
        ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=src) for rel, src in share]
        api(self.token, self.endpoint).preupload_lfs_files(
            self.repo_id, additions=ops, repo_type=self.repo_type, revision=self.revision
        )


def _retag(hf, repo_id: str, repo_type: str, tag: str, branch: str, what: str, endpoint: str | None) -> None:
    """Point `tag` at the head of `branch` (moving it if it pointed elsewhere, as LeRobot does with v3.0)."""
    branches, tags = _call(what, endpoint, _refs, hf, repo_id, repo_type)
    if tags.get(tag) == branches[branch]:
        return
    if tag in tags:
        _call(what, endpoint, hf.delete_tag, repo_id, tag=tag, repo_type=repo_type)
    _call(what, endpoint, hf.create_tag, repo_id, tag=tag, revision=branches[branch], repo_type=repo_type)
