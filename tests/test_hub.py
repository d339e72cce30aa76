"""Push and pull through a real Hub-compatible server (tests/hubserver.py), with huggingface_hub and LeRobot as
the clients, the way a user shares datasets, derived revisions and world models with collaborators."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from glam_lerobot import hub, provenance

GLAM = {
    "embodiment": "kinova_gen3",
    "arms": 1,
    "task": "stack_two",
    "source": {"format": "sim", "command": "glam-lerobot sim record stack_two"},
}


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file of a dataset folder (what 'byte-identical' means here)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


def data_files(root: Path) -> dict[str, str]:
    """digest() without the files the Hub adds (.gitattributes) or push renders (README.md, the card)."""
    return {k: v for k, v in digest(root).items() if k not in ("README.md", ".gitattributes")}


def refs(repo_id: str, endpoint: str | None = None, token: str | None = None) -> tuple[dict, dict]:
    r = hub.api(token, endpoint).list_repo_refs(repo_id, repo_type="dataset")
    return {b.name: b.target_commit for b in r.branches}, {t.name: t.target_commit for t in r.tags}


def add_latent_revision(parent_root: Path, repo_id: str, out: Path, revision: str) -> Path:
    """A derived revision the way relabel makes one: latents and their pads as new columns (with stats), in a new
    root with provenance naming the parent (glam_lerobot.revisions.add_columns, on LeRobot's add_features)."""
    from glam_lerobot import schema
    from glam_lerobot.revisions import add_columns

    info = json.loads((parent_root / "meta" / "info.json").read_text())
    n, eps = info["total_frames"], info["total_episodes"]
    latents = np.arange(n * 8, dtype=np.float32).reshape(-1, 8)
    is_pad = np.zeros((n, 1), np.float32)
    is_pad[[(e + 1) * (n // eps) - 1 for e in range(eps)]] = 1.0  # the episodes here are of equal length
    feature = {"dtype": "float32", "names": None}
    return add_columns(
        parent_root,
        {
            schema.LATENT: (latents, {**feature, "shape": (8,)}),
            schema.LATENT_IS_PAD: (is_pad, {**feature, "shape": (1,)}),
        },
        revision=revision,
        command="glam-lerobot relabel",
        details={"model": "test-user/wm@main"},
        output_root=out,
    )


@pytest.mark.usefixtures("hub")
def test_push_then_pull_at_tag_and_branch_into_a_clean_cache(make_tiny_dataset, tmp_lerobot_home, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = make_tiny_dataset("kinova", episodes=2, frames=3, glam_meta=GLAM)
    s = hub.push_dataset(root, "test-user/kinova")
    assert s.branch == "main" and s.tags == ["v3.0"] and s.commit
    assert "meta/info.json" in s.added and "README.md" in s.added and not s.deleted
    branches, tags = refs("test-user/kinova")
    assert tags["v3.0"] == branches["main"] == s.commit

    again = hub.push_dataset(root, "test-user/kinova")  # nothing changed: no empty commit
    assert again.commit is None and again.unchanged == len(s.added)

    at_tag = hub.pull("test-user/kinova")  # default revision: the v3.0 tag, like LeRobot's default load
    at_branch = hub.pull("test-user/kinova", "main", tmp_path / "checkout")
    assert at_tag.revision == "v3.0" and at_tag.root.is_relative_to(tmp_lerobot_home / "hub")
    assert at_tag.commit == s.commit == at_branch.commit
    assert at_tag.downloaded == at_tag.files and at_tag.downloaded_bytes == at_tag.bytes
    assert hub.pull("test-user/kinova").downloaded == 0  # already cached: nothing moves
    assert hub.origin(at_tag.root) == {
        "repo_id": "test-user/kinova",
        "repo_type": "dataset",
        "revision": "v3.0",
        "revisions": ["v3.0"],
        "commit": s.commit,
    }
    assert hub.origin(at_branch.root)["commit"] == s.commit and hub.origin(root) is None
    local = digest(root)
    for pulled in (at_tag.root, at_branch.root):
        assert data_files(pulled) == local
        assert (pulled / "README.md").is_file()

    # LeRobot itself, with no root, finds the same data through the same cache.
    ds = LeRobotDataset("test-user/kinova", video_backend="pyav")
    mine = LeRobotDataset("test-user/kinova", root=root, video_backend="pyav")
    assert len(ds) == len(mine) == 6
    np.testing.assert_array_equal(ds[4]["action"].numpy(), mine[4]["action"].numpy())
    assert ds[4]["observation.images.front"].shape == (3, 32, 32)


@pytest.mark.usefixtures("hub")
def test_push_pre_uploads_in_parallel_tasks_and_commits_once(make_tiny_dataset, tmp_path, monkeypatch):
    """--tasks 2: two datatrove tasks upload the LFS files, this process only commits (it uploads nothing)."""
    import huggingface_hub._commit_api as commit_api

    from glam_lerobot.executors import Executor

    uploaded_here = []
    real = commit_api.lfs_upload
    monkeypatch.setattr(commit_api, "lfs_upload", lambda **kw: uploaded_here.append(kw) or real(**kw))
    control = make_tiny_dataset("control", episodes=3, frames=4, glam_meta=GLAM)
    hub.push_dataset(control, "test-user/one-process")  # without tasks, this process uploads the LFS files
    assert len(uploaded_here) >= 3  # videos and parquet files go through LFS
    uploaded_here.clear()
    root = make_tiny_dataset("kinova", episodes=2, frames=3, glam_meta=GLAM)
    s = hub.push_dataset(root, "test-user/tasks", executor=Executor(tasks=2))
    assert s.commit and "meta/info.json" in s.added
    assert uploaded_here == []  # every LFS object was already there: the tasks sent them
    assert data_files(hub.pull("test-user/tasks", "main", tmp_path / "checkout").root) == digest(root)
    with pytest.raises(hub.HubError, match="not slurm"):
        hub.push_dataset(root, "test-user/tasks", executor=Executor(kind="slurm", partition="cpu"))


@pytest.mark.usefixtures("hub")
def test_derived_revision_goes_to_its_own_branch_and_tag(make_tiny_dataset, tmp_lerobot_home, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    repo = "test-user/kinova_rev"
    parent = make_tiny_dataset("parent", repo_id=repo, episodes=2, frames=3, glam_meta=GLAM)
    first = hub.push_dataset(parent, repo)
    parent_pull = hub.pull(repo, "v3.0")
    before = digest(parent_pull.root)

    child = add_latent_revision(parent_pull.root, repo, tmp_path / "latents", "latents-v1")
    with pytest.raises(hub.HubError, match="never over its parent"):
        hub.push_dataset(child, repo, revision="main")
    pushed = hub.push_dataset(child, repo)  # the revision name comes from meta/glam.json
    assert pushed.branch == "latents-v1" and pushed.tags == ["latents-v1"]
    assert "data/chunk-000/file-000.parquet" in pushed.changed and "meta/glam.json" in pushed.changed
    assert not any(p.startswith("videos/") for p in pushed.added + pushed.changed)  # copied videos: not resent

    branches, tags = refs(repo)
    assert branches["main"] == tags["v3.0"] == first.commit  # the parent and its v3.0 tag did not move
    assert branches["latents-v1"] == tags["latents-v1"] == pushed.commit

    # Both revisions side by side in one clean cache.
    new = hub.pull(repo, "latents-v1")
    old = hub.pull(repo, "v3.0")
    assert new.root != old.root
    assert digest(old.root) == before  # the parent revision is byte-identical
    assert LeRobotDataset(repo, revision="latents-v1", video_backend="pyav")[5]["latent.action"].tolist() == list(
        np.arange(40, 48, dtype=np.float32)
    )
    assert "latent.action" not in LeRobotDataset(repo, video_backend="pyav").meta.features

    rows = {(r.name, r.kind): r for r in hub.revisions(repo)}
    rev = rows[("latents-v1", "branch")]
    assert rev.columns_added == ["latent.action", "latent.is_pad"]
    assert rev.parent == f"{repo}@main ({first.commit[:12]})"  # the exact parent, not a moving main
    assert rev.command == "glam-lerobot relabel" and rev.frames == 6
    assert rows[("main", "branch")].parent is None and rows[("v3.0", "tag")].commit == first.commit
    assert rows[("latents-v1", "tag")].commit == pushed.commit

    # Pushing over an existing branch removes what no longer belongs to it.
    (child / "meta" / "notes.json").write_text(json.dumps({"draft": True}))
    assert hub.push_dataset(child, repo).added == ["meta/notes.json"]
    checkout = tmp_path / "checkout"
    assert (hub.pull(repo, "latents-v1", checkout).root / "meta" / "notes.json").is_file()
    hub.pull(repo, "main", checkout)  # one folder, another revision: nothing of the first one is left
    assert data_files(checkout) == {k: v for k, v in before.items() if k not in ("README.md", ".gitattributes")}
    (child / "meta" / "notes.json").unlink()
    fixed = hub.push_dataset(child, repo)
    assert fixed.deleted == ["meta/notes.json"] and not fixed.added
    files = set(hub.api().list_repo_files(repo, repo_type="dataset", revision="latents-v1"))
    assert "meta/notes.json" not in files
    assert refs(repo)[1]["latents-v1"] == fixed.commit  # the revision's tag follows its branch
    assert refs(repo)[1]["v3.0"] == first.commit


@pytest.mark.usefixtures("hub")
def test_a_pushed_revision_names_its_parent_by_hub_repo_and_commit(make_tiny_dataset, tmp_lerobot_home, tmp_path):
    """Made locally (parent `local/...` and a path), pushed: a collaborator sees the Hub repo and the commit."""
    parent = make_tiny_dataset("lineage", repo_id="local/lineage", episodes=2, frames=3, glam_meta=GLAM)
    child = add_latent_revision(parent, "local/lineage", tmp_path / "latents", "latents-v1")
    assert provenance.read(child)["parent"]["repo_id"] == "local/lineage"

    fresh = hub.push_dataset(child, "test-user/brand-new")  # a repo that does not exist yet: created, with a note
    assert fresh.commit and any("is not on test-user/brand-new: push it first" in n for n in fresh.notes)
    hub.push_dataset(make_tiny_dataset("other", episodes=1, frames=3, glam_meta=GLAM), "test-user/elsewhere")
    orphan = hub.push_dataset(child, "test-user/elsewhere")  # that repo's main is another dataset
    assert any("is not on test-user/elsewhere: push it first" in n for n in orphan.notes)

    repo = "test-user/lineage"
    first = hub.push_dataset(parent, repo)
    pushed = hub.push_dataset(child, repo)
    assert not pushed.notes
    pulled = provenance.read(hub.pull(repo, "latents-v1").root)
    assert pulled["parent"] == {
        "repo_id": repo,
        "revision": "main",
        "commit": first.commit,
        "local": {"repo_id": "local/lineage", "root": str(parent)},
    }
    rows = {(r.name, r.kind): r for r in hub.revisions(repo)}
    assert rows[("latents-v1", "branch")].parent == f"{repo}@main ({first.commit[:12]})"
    assert (
        f"`{repo}@main (commit {first.commit[:12]})`" in (hub.pull(repo, "latents-v1").root / "README.md").read_text()
    )
    assert provenance.read(child)["parent"]["repo_id"] == "local/lineage"  # the local dataset is not modified
    assert hub.push_dataset(child, repo).commit is None  # and a second push has nothing to send


@pytest.mark.usefixtures("hub")
def test_world_model_folder_round_trip(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "wm"
    folder.mkdir()
    weights = {"idm.weight": torch.randn(8, 16), "forward.bias": torch.randn(16)}
    save_file(weights, folder / "model.safetensors")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "name": "glam-tiny",
                "latent_dim": 8,
                "mixture": {"target": [{"repo_id": "test-user/kinova", "revision": "main"}]},
            }
        )
    )
    (folder / "checkpoints" / "step-10").mkdir(parents=True)
    (folder / "checkpoints" / "step-10" / "training_state.pt").write_bytes(b"optimizer state: stays local")
    assert hub.folder_kind(folder) == "model"
    s = hub.push(folder, "test-user/glam-tiny")
    assert s.repo_type == "model" and sorted(s.added) == ["README.md", "config.json", "model.safetensors"]

    got = hub.pull("test-user/glam-tiny", root=tmp_path / "pulled")  # detected as a model repo
    assert got.repo_type == "model"
    back = load_file(got.root / "model.safetensors")
    for k, v in weights.items():
        assert torch.equal(back[k], v)
    assert json.loads((got.root / "config.json").read_text())["latent_dim"] == 8
    assert "test-user/kinova" in (got.root / "README.md").read_text()


def test_server_dies_mid_push_then_a_retry_completes(make_tiny_dataset, tmp_path):
    import hubserver
    from conftest import TEST_TOKEN

    repo = "test-user/crashy"
    root = make_tiny_dataset("crashy", repo_id=repo, episodes=1, frames=3, glam_meta=GLAM)
    child_meta = provenance.derived(
        provenance.read(root),
        revision="fix-v1",
        parent={"repo_id": repo, "revision": "main"},
        step={"command": "test", "columns": []},
    )
    server = hubserver.start(str(tmp_path / "store"), token=TEST_TOKEN)
    try:
        first = hub.push_dataset(root, repo, endpoint=server.url)
        server = server.restart(die_on="/commit/")  # the next commit kills the server before it lands
        provenance.write(root, child_meta)
        (root / "meta" / "extra.json").write_text("{}")
        with pytest.raises(hub.HubError, match="lost the connection to http://127.0.0.1.*run the same command again"):
            hub.push_dataset(root, repo, endpoint=server.url)
        assert server.proc.wait(timeout=10) == 3  # it died on the commit (the client may notice first)

        server = server.restart()
        branches, tags = refs(repo, server.url)
        assert branches["main"] == tags["v3.0"] == first.commit
        assert "fix-v1" not in branches and "fix-v1" not in tags  # no half revision: nothing named like it
        with pytest.raises(hub.HubError, match="no revision 'fix-v1'.*interrupted.*run the same push again"):
            hub.pull(repo, "fix-v1", tmp_path / "half", endpoint=server.url)

        assert hub.STAGING_PREFIX + "fix-v1" in refs(repo, server.url)[0]  # what the dead push left
        done = hub.push_dataset(root, repo, endpoint=server.url)
        assert done.branch == "fix-v1" and done.commit
        assert not any(b.startswith(hub.STAGING_PREFIX) for b in refs(repo, server.url)[0])  # cleaned up
        got = hub.pull(repo, "fix-v1", tmp_path / "check", endpoint=server.url)
        pushed_meta = "meta/glam.json"  # pushed with the parent's commit filled in; everything else as it is here
        assert {k: v for k, v in data_files(got.root).items() if k != pushed_meta} == {
            k: v for k, v in digest(root).items() if k != pushed_meta
        }
        assert provenance.read(got.root)["parent"]["commit"] == first.commit
        assert refs(repo, server.url)[1]["v3.0"] == first.commit
    finally:
        server.stop()


@pytest.mark.usefixtures("hub")
def test_a_push_that_dies_before_the_tag_moves_is_caught_by_pull(make_tiny_dataset, tmp_path):
    import hubserver
    from conftest import TEST_TOKEN

    repo = "test-user/tagless"
    root = make_tiny_dataset("tagless", repo_id=repo, episodes=1, frames=3, glam_meta=GLAM)
    server = hubserver.start(str(tmp_path / "store"), token=TEST_TOKEN)
    try:
        first = hub.push_dataset(root, repo, endpoint=server.url)
        (root / "meta" / "extra.json").write_text("{}")
        server = server.restart(die_on="/tag/")  # main gets the new commit, the v3.0 tag never moves
        with pytest.raises(hub.HubError):
            hub.push_dataset(root, repo, endpoint=server.url)
        server = server.restart()
        branches, tags = refs(repo, server.url)
        assert branches["main"] != first.commit and tags["v3.0"] == first.commit
        with pytest.raises(hub.HubError, match="v3.0 tag .* is behind main.*interrupted.*run the same push again"):
            hub.pull(repo, root=tmp_path / "stale", endpoint=server.url)
        hub.push_dataset(root, repo, endpoint=server.url)  # the retry moves the tag
        got = hub.pull(repo, root=tmp_path / "fresh", endpoint=server.url)
        assert (got.root / "meta" / "extra.json").is_file()
    finally:
        server.stop()


@pytest.mark.usefixtures("hub")
def test_pull_refuses_a_revision_whose_content_is_another_revision(make_tiny_dataset, tmp_lerobot_home, tmp_path):
    repo = "test-user/mislabelled"
    parent = make_tiny_dataset("mislabelled", repo_id=repo, episodes=1, frames=3, glam_meta=GLAM)
    hub.push_dataset(parent, repo)
    child = add_latent_revision(hub.pull(repo, "v3.0").root, repo, tmp_path / "latents", "latents-v1")
    hub.push_dataset(child, repo)
    # a branch named like a mask revision that points at the latents revision (what a half push used to leave)
    hub.api().create_branch(repo, branch="masks-gt", revision="latents-v1", repo_type="dataset")
    with pytest.raises(hub.HubError, match="'masks-gt' holds the dataset of revision 'latents-v1'"):
        hub.pull(repo, "masks-gt", tmp_path / "wrong")
    assert hub.pull(repo, "latents-v1", tmp_path / "right").files > 0


def test_missing_repo_and_missing_revision(make_tiny_dataset):
    with pytest.raises(hub.HubError, match="no dataset or model repository test-user/nothing-here"):
        hub.pull("test-user/nothing-here")
    with pytest.raises(hub.HubError, match="repository not found"):
        hub.pull("test-user/nothing-here", repo_type="dataset")
    root = make_tiny_dataset("small", episodes=1, frames=2)
    hub.push_dataset(root, "test-user/small")
    with pytest.raises(hub.HubError, match=r"has no revision 'masks-v7' \(branches: main; tags: v3.0\)"):
        hub.pull("test-user/small", "masks-v7")
    with pytest.raises(hub.HubError, match="is not empty and was not made by a pull"):
        hub.pull("test-user/small", "main", root.parent)  # would delete the user's other files


@pytest.mark.usefixtures("hub")
def test_bad_token_is_refused_before_anything_is_created(make_tiny_dataset):
    root = make_tiny_dataset("secret", episodes=1, frames=2)
    with pytest.raises(hub.HubError, match=r"refused the token \(401\)"):
        hub.push_dataset(root, "test-user/secret", token="hf_not_the_right_one")
    assert not hub.api().repo_exists("test-user/secret", repo_type="dataset")


@pytest.mark.usefixtures("hub")
def test_invalid_dataset_is_refused_before_upload(make_tiny_dataset):
    root = make_tiny_dataset("broken", episodes=2, frames=2)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] = 5
    info_path.write_text(json.dumps(info))
    with pytest.raises(hub.HubError, match=r"meta/info.json: total_frames is 5 but data/ holds 4 frames"):
        hub.push_dataset(root, "test-user/broken")
    info["total_frames"] = 4
    info_path.write_text(json.dumps(info))
    (root / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4").unlink()
    with pytest.raises(hub.HubError, match="field 'observation.images.front' is missing"):
        hub.push_dataset(root, "test-user/broken")
    assert not hub.api().repo_exists("test-user/broken", repo_type="dataset")


@pytest.mark.usefixtures("hub")
def test_lerobots_own_push_to_hub_works_against_the_test_hub(make_tiny_dataset, tmp_lerobot_home):
    """Other stages may call LeRobot's push_to_hub directly: its card validation (hard-coded to huggingface.co in
    huggingface_hub 1.x) is routed to the test Hub by glam_lerobot.hub_endpoint, and the data round-trips."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = make_tiny_dataset("via_lerobot", episodes=1, frames=2)
    LeRobotDataset("test-user/via_lerobot", root=root, video_backend="pyav").push_to_hub(push_videos=True)
    branches, tags = refs("test-user/via_lerobot")
    assert tags["v3.0"] == branches["main"]
    pulled = hub.pull("test-user/via_lerobot")
    assert data_files(pulled.root) == digest(root)
    assert "LeRobot" in (pulled.root / "README.md").read_text()
