"""The Hub client shared by push, pull and revisions: one HfApi, one translation of its errors into a
sentence a user can act on (HubError), what a folder is, and the file hashes that tell what moved."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CODEBASE_TAG = "v3.0"  # lerobot.datasets.utils.CODEBASE_VERSION, the tag LeRobot's default loads resolve
# Never pushed: LeRobot's staging images, huggingface_hub's download metadata, half-written outputs.
IGNORE = (".cache/", "images/", ".git/")
# A world-model training folder also holds resumable states (optimizer, RNG): the model repo gets the final model.
MODEL_IGNORE = ("checkpoints/",)
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIGS = ("config.json", "config.yaml")


class HubError(RuntimeError):
    """A push or pull that cannot go ahead; the message says what, where and what to do."""


STAGING_PREFIX = "glam-staging--"  # where a new revision's commit lands before its branch exists
PUSH_MARK = "Pushed by glam-lerobot."  # the commit description of every push (pull checks the v3.0 tag by it)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


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
    if isinstance(e, errors.LocalTokenNotFoundError):
        return HubError(f"{what}: no Hub token. Log in with `hf auth login` or set HF_TOKEN (write access to push).")
    if isinstance(e, (httpx.TransportError, ConnectionError, errors.OfflineModeIsEnabled)):
        if not what.startswith("push"):  # a read: nothing was sent, nothing local was changed
            return HubError(
                f"{what}: cannot reach the Hub at {at} ({type(e).__name__}: {e}). Check HF_ENDPOINT and the "
                "network; with --offline, what was pulled before is used."
            )
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
        errors.LocalTokenNotFoundError,
    ) as e:
        raise _explain(e, what, endpoint) from e


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


def logged_in(token: str | None = None) -> str | None:
    """The user name the configured token belongs to, or None (offline, or no token)."""
    if os.environ.get("HF_HUB_OFFLINE"):
        return None
    try:
        return api(token).whoami().get("name")
    except Exception:
        return None
