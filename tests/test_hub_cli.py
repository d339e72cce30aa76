"""The Hub commands as a user types them: push, revisions, pull, mixture check/push/pull, against the test Hub."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from glam_lerobot.cli import app

runner = CliRunner()


def run(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.mark.usefixtures("hub")
def test_push_revisions_pull_and_share_a_mixture(make_tiny_dataset, tmp_lerobot_home, tmp_path):
    kinova = make_tiny_dataset("cli_kinova", episodes=1, frames=3, glam_meta={"embodiment": "kinova_gen3"})
    umi = make_tiny_dataset("cli_umi", robot=False, cameras=("top", "front"), episodes=1, frames=3)

    out = run("push", str(kinova), "--repo-id", "test-user/cli_kinova").output
    assert "dataset test-user/cli_kinova@main: commit" in out and "tags v3.0" in out
    run("push", str(umi), "--repo-id", "test-user/cli_umi", "--revision", "raw")

    out = run("revisions", "test-user/cli_kinova").output
    assert "main" in out and "v3.0" in out and "branch" in out and "tag" in out

    out = run("pull", "test-user/cli_kinova", "--revision", "main", "--root", str(tmp_path / "copy")).output
    assert f"-> {tmp_path / 'copy'}" in out.replace("\n", "")
    assert (tmp_path / "copy" / "meta" / "info.json").is_file()

    mix = tmp_path / "mix.yaml"
    mix.write_text(
        textwrap.dedent("""
        name: cli_mix
        target: [{repo_id: test-user/cli_kinova}]
        auxiliary: [{repo_id: test-user/cli_umi, revision: raw}]
        cameras: {test-user/cli_umi: {top: overhead}}
    """)
    )
    out = run("mixture", "check", str(mix)).output
    assert "mixture cli_mix: OK" in out and "top->overhead" in out

    out = run("mixture", "push", str(mix), "--repo-id", "test-user/mixtures").output
    assert "test-user/mixtures@main: commit" in out
    got = tmp_path / "back" / "mix.yaml"
    run("mixture", "pull", "test-user/mixtures", "--output", str(got))
    from glam_lerobot.mixture import load_mixture

    assert load_mixture(got).auxiliary == load_mixture(mix).auxiliary

    bad = tmp_path / "bad.yaml"
    bad.write_text(mix.read_text().replace("revision: raw", "revision: masks-v3"))
    result = run("mixture", "push", str(bad), "--repo-id", "test-user/mixtures", ok=False)
    assert result.exit_code == 1 and "has no revision 'masks-v3'" in result.output
    result = run("mixture", "check", str(bad), ok=False)
    assert result.exit_code == 1 and "no revision 'masks-v3'" in result.output


@pytest.mark.usefixtures("hub")
def test_errors_are_one_clear_line(tmp_path):
    result = run("push", str(tmp_path), "--repo-id", "test-user/x", ok=False)
    assert result.exit_code == 1 and "neither a LeRobot dataset" in result.output
    result = run("pull", "test-user/does-not-exist", ok=False)
    assert result.exit_code == 1 and "no dataset or model repository test-user/does-not-exist" in result.output


def test_no_token_and_a_dead_server_are_one_line_each(make_tiny_dataset, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    pulled = CliRunner().invoke(app, ["pull", "test-user/anything", "--endpoint", dead])
    assert pulled.exit_code == 1 and "cannot reach the Hub at " + dead in pulled.output
    assert "uploaded" not in pulled.output and "Traceback" not in pulled.output
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(make_tiny_dataset("x").parent / "no-login"))  # no stored token either
    pushed = CliRunner().invoke(app, ["push", str(make_tiny_dataset("y")), "--repo-id", "me/y", "--endpoint", dead])
    assert pushed.exit_code == 1 and "no Hub token" in pushed.output and "hf auth login" in pushed.output
