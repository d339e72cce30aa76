"""Mixture files: a user writes one YAML naming target and auxiliary datasets, and every mistake in it is caught
before anything is trained or uploaded."""

from __future__ import annotations

import textwrap

import pytest

from glam_lerobot import mixture as mx


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def kinova_and_umi(make_tiny_dataset):
    kinova = make_tiny_dataset("kinova", episodes=2, frames=3)
    umi = make_tiny_dataset("umi", robot=False, cameras=("top", "front"), episodes=1, frames=3)
    return kinova, umi


def test_local_mixture_resolves_with_camera_renames(tmp_path, kinova_and_umi):
    kinova, umi = kinova_and_umi
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: stack_two_umi
        target:    [{{repo_id: test-user/kinova, root: kinova}}]        # relative to this file
        auxiliary: [{{repo_id: test-user/umi, root: {umi}}}]
        cameras:   {{test-user/umi: {{top: overhead}}}}
    """,
    )
    mix = mx.load_mixture(path)
    assert mix.name == "stack_two_umi"
    assert [r.repo_id for r in mix.target] == ["test-user/kinova"]
    assert mix.target[0].root == kinova
    assert mix.camera_map("test-user/umi") == {"top": "overhead"}

    resolved = mx.resolve(mix, pull=False)
    assert [(d.ref.repo_id, d.role, d.root) for d in resolved] == [
        ("test-user/kinova", "target", kinova),
        ("test-user/umi", "auxiliary", umi),
    ]

    rows = mx.check_mixture(mix, pull=False)
    assert rows[0]["action"] and not rows[1]["action"]
    assert rows[1]["cameras"] == {"top": "overhead", "front": "front"}
    assert rows[0]["episodes"] == 2 and rows[1]["frames"] == 3

    again = mx.load_mixture(mx.save_mixture(mix, tmp_path / "copy" / "mix.yaml"))
    assert again.target == mix.target and again.cameras == mix.cameras


def test_unmapped_camera_is_refused(tmp_path, kinova_and_umi):
    kinova, umi = kinova_and_umi
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/kinova, root: {kinova}}}]
        auxiliary: [{{repo_id: test-user/umi, root: {umi}}}]
    """,
    )
    with pytest.raises(mx.MixtureError, match=r"auxiliary test-user/umi: camera\(s\) \['top'\] do not map"):
        mx.resolve(mx.load_mixture(path))


def test_camera_onto_unknown_canonical_name_is_refused(tmp_path, kinova_and_umi):
    kinova, umi = kinova_and_umi
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/kinova, root: {kinova}}}]
        auxiliary: [{{repo_id: test-user/umi, root: {umi}}}]
        cameras: {{test-user/umi: {{top: wrist}}}}
    """,
    )
    with pytest.raises(mx.MixtureError, match=r"cameras.test-user/umi.top: 'wrist' is not a canonical camera"):
        mx.load_mixture(path)


def test_renaming_a_camera_the_dataset_lacks_is_refused(tmp_path, kinova_and_umi):
    kinova, umi = kinova_and_umi
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/kinova, root: {kinova}}}]
        auxiliary: [{{repo_id: test-user/umi, root: {umi}}}]
        cameras: {{test-user/umi: {{top: overhead, side: front}}}}
    """,
    )
    with pytest.raises(mx.MixtureError, match="has no camera 'side'"):
        mx.resolve(mx.load_mixture(path))


def test_target_without_action_is_refused(tmp_path, kinova_and_umi):
    _, umi = kinova_and_umi
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/umi, root: {umi}}}]
        cameras: {{test-user/umi: {{top: overhead}}}}
    """,
    )
    with pytest.raises(mx.MixtureError, match="target test-user/umi: a target dataset needs robot actions"):
        mx.resolve(mx.load_mixture(path))


def test_missing_local_root_and_bad_fields(tmp_path):
    path = write(
        tmp_path / "mix.yaml",
        """
        name: m
        target: [{repo_id: test-user/kinova, root: nowhere}]
    """,
    )
    with pytest.raises(mx.MixtureError, match=r"target test-user/kinova: root .*nowhere is not a LeRobot dataset"):
        mx.resolve(mx.load_mixture(path))
    with pytest.raises(mx.MixtureError, match=r"target\[0\].repo_id: expected 'namespace/name'"):
        mx.load_mixture(write(tmp_path / "b.yaml", "name: m\ntarget: [{repo_id: kinova}]\n"))
    with pytest.raises(mx.MixtureError, match="'target' must name at least one dataset"):
        mx.load_mixture(write(tmp_path / "c.yaml", "name: m\nauxiliary: [test-user/umi@v1]\n"))
    with pytest.raises(mx.MixtureError, match=r"unknown field\(s\) \['revison'\]"):
        mx.load_mixture(write(tmp_path / "d.yaml", "name: m\ntarget: [{repo_id: a/b, revison: x}]\n"))
    with pytest.raises(mx.MixtureError, match="cameras.a/c: no dataset with this repo_id"):
        mx.load_mixture(write(tmp_path / "e.yaml", "name: m\ntarget: [a/b]\ncameras: {a/c: {x: front}}\n"))


def test_hub_datasets_are_pulled_at_their_revision(tmp_path, hub, tmp_lerobot_home, kinova_and_umi):
    from glam_lerobot import hub as hub_api

    kinova, umi = kinova_and_umi
    hub_api.push_dataset(umi, "test-user/mix_umi", revision="cams-v1")
    path = write(
        tmp_path / "mix.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/kinova, root: {kinova}}}]
        auxiliary: [{{repo_id: test-user/mix_umi, revision: cams-v1}}]
        cameras: {{test-user/mix_umi: {{top: overhead}}}}
    """,
    )
    mix = mx.load_mixture(path)
    with pytest.raises(mx.MixtureError, match="not in the local cache"):
        mx.resolve(mix, pull=False)  # offline and never pulled: a clear error, no download
    resolved = mx.resolve(mix)
    aux = resolved[1].root
    assert aux.is_relative_to(tmp_lerobot_home / "hub")
    assert (aux / "meta" / "info.json").read_bytes() == (umi / "meta" / "info.json").read_bytes()
    assert mx.resolve(mix, pull=False)[1].root == aux  # now cached: works offline

    missing = write(
        tmp_path / "missing.yaml",
        f"""
        name: m
        target: [{{repo_id: test-user/kinova, root: {kinova}}}]
        auxiliary: [{{repo_id: test-user/mix_umi, revision: masks-v9}}]
    """,
    )
    with pytest.raises(mx.MixtureError, match=r"test-user/mix_umi.*no revision 'masks-v9'.*branches: cams-v1, main"):
        mx.resolve(mx.load_mixture(missing))


def test_local_root_must_hold_the_named_revision(tmp_path, kinova_and_umi):
    kinova, _ = kinova_and_umi
    ok = write(
        tmp_path / "ok.yaml", f"name: m\ntarget: [{{repo_id: test-user/kinova, revision: main, root: {kinova}}}]\n"
    )
    assert mx.resolve(mx.load_mixture(ok), pull=False)[0].root == kinova
    wrong = write(
        tmp_path / "wrong.yaml",
        f"name: m\ntarget: [{{repo_id: test-user/kinova, revision: masks-v1, root: {kinova}}}]\n",
    )
    with pytest.raises(mx.MixtureError, match=r"revision 'masks-v1' was asked for, but root .* holds revision 'main'"):
        mx.resolve(mx.load_mixture(wrong), pull=False)
