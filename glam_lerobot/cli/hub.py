"""CLI for the Hub stage: `push`, `pull`, `revisions` and `mixture check|push|pull`. Parses, then calls
glam_lerobot.hub / glam_lerobot.mixture (huggingface_hub and LeRobot are imported inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glam_lerobot.cli import cluster
from glam_lerobot.cli.errors import fail as _fail

RepoType = Annotated[str | None, typer.Option("--repo-type", help="dataset or model (default: detected)")]
Token = Annotated[
    str | None, typer.Option("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)", show_default=False)
]
Endpoint = Annotated[
    str | None, typer.Option("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
]

mixture_app = typer.Typer(
    help="Mixture files: which datasets at which revisions are target and auxiliary, and how cameras map.",
    no_args_is_help=True,
)


def push(
    folder: Annotated[Path, typer.Argument(help="a LeRobot dataset root or a world-model checkpoint folder")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="namespace/name on the Hub")],
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            help="branch to push to. Default: main for an original dataset or a model; for a derived "
            "dataset the revision named in its meta/glam.json",
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="create the repo private")] = False,
    token: Token = None,
    endpoint: Endpoint = None,
    executor: str = typer.Option(
        "local", help="local or ray: where --tasks pre-upload the files", rich_help_panel=cluster.PANEL
    ),
    tasks: int = typer.Option(
        None,
        help="upload a dataset's files in N parallel tasks, then commit once \\[default: one process]",
        rich_help_panel=cluster.PANEL,
    ),
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """Push a dataset or world-model checkpoint to the Hub as one commit.

    Reads FOLDER: a dataset (meta/info.json; checked first: LeRobot loads it and `validate` finds no FAIL) or a checkpoint (model.safetensors +
    config.json). Writes one commit to the repo's branch (files the branch no longer needs are deleted), renders
    the card as README.md, and tags it: an original dataset on main moves LeRobot's `v3.0` tag; a derived
    dataset (meta/glam.json has a parent) goes to its own branch and tag named after its revision, leaving the
    parent and `v3.0` untouched.
    """
    from rich.console import Console

    from glam_lerobot import hub

    try:
        if executor == "slurm":
            raise hub.HubError("push commits in this command once every file is uploaded: use --executor local or ray")
        where = cluster.executor_from(executor, tasks, None, "04:00:00", 1, 0, None, ray_address)
        summary = hub.push(
            folder, repo_id, revision, private=private or None, token=token, endpoint=endpoint, executor=where
        )
    except hub.HubError as e:
        _fail(e)
    for line in summary.lines():
        Console(soft_wrap=True).print(line, highlight=False)


def pull(
    repo_id: Annotated[str, typer.Argument(help="namespace/name on the Hub")],
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="branch, tag or commit (default: v3.0 for datasets, main for models)"),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", help="download into this folder (default: the revision-safe cache in HF_LEROBOT_HOME/hub)"
        ),
    ] = None,
    repo_type: RepoType = None,
    offline: Annotated[bool, typer.Option("--offline", help="use only what is already cached")] = False,
    token: Token = None,
    endpoint: Endpoint = None,
) -> None:
    """Download a dataset or world model at a revision.

    Reads the Hub repo REPO_ID at --revision. Writes the files into --root (removing files that revision does not
    have) or into LeRobot's revision-safe cache, and prints the folder to pass to `LeRobotDataset(repo_id,
    root=...)` or to `relabel --world-model`.
    """
    from rich.console import Console

    from glam_lerobot import hub

    try:
        summary = hub.pull(
            repo_id, revision, root, repo_type=repo_type, local_only=offline, token=token, endpoint=endpoint
        )
    except hub.HubError as e:
        _fail(e)
    for line in summary.lines():
        Console(soft_wrap=True).print(line, highlight=False)


def revisions(
    repo_id: Annotated[str, typer.Argument(help="namespace/name on the Hub")],
    repo_type: RepoType = None,
    token: Token = None,
    endpoint: Endpoint = None,
) -> None:
    """List a repo's branches and tags with what each holds.

    Reads every branch's and tag's meta/glam.json and meta/info.json. Writes nothing; prints the revision each
    ref holds, its parent revision, the columns it added, the command that made it and its size.
    """
    from rich.console import Console
    from rich.table import Table

    from glam_lerobot import hub

    try:
        rows = hub.revisions(repo_id, repo_type=repo_type, token=token, endpoint=endpoint)
    except hub.HubError as e:
        _fail(e)
    table = Table(title=f"{repo_id}: branches and tags")
    for col in ("ref", "kind", "commit", "parent", "columns added", "command", "episodes", "frames", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            r.kind,
            r.commit[:10],
            r.parent or "-",
            ", ".join(r.columns_added) or "-",
            r.command or "-",
            str(r.episodes if r.episodes is not None else "-"),
            str(r.frames if r.frames is not None else "-"),
            r.note,
        )
    Console(width=200).print(table)


@mixture_app.command("check")
def mixture_check(
    file: Annotated[Path, typer.Argument(help="the mixture YAML")],
    offline: Annotated[bool, typer.Option("--offline", help="do not download; use local roots and the cache")] = False,
) -> None:
    """Check a mixture: every dataset exists at its revision, cameras map onto the canonical ones, targets have
    actions.

    Reads FILE and the meta/ of every dataset it names (Hub datasets are pulled into the revision-safe cache
    unless --offline). Writes nothing; prints one row per dataset and exits 1 on the first problem.
    """
    from rich.console import Console
    from rich.table import Table

    from glam_lerobot import mixture

    try:
        mix = mixture.load_mixture(file)
        rows = mixture.check_mixture(mix, pull=not offline)
    except mixture.MixtureError as e:
        _fail(e)
    table = Table(title=f"mixture {mix.name}: OK")
    for col in ("role", "dataset", "revision", "episodes", "frames", "fps", "action", "cameras", "root"):
        table.add_column(col)
    for r in rows:
        cams = ", ".join(k if k == v else f"{k}->{v}" for k, v in r["cameras"].items())
        table.add_row(
            r["role"],
            r["repo_id"],
            r["revision"] or "-",
            str(r["episodes"]),
            str(r["frames"]),
            str(r["fps"]),
            "yes" if r["action"] else "no",
            cams,
            str(r["root"]),
        )
    Console(width=200).print(table)
    fps = {r["fps"] for r in rows}
    if len(fps) > 1:
        Console().print(f"[yellow]note:[/yellow] datasets have different frame rates {sorted(fps)}")


@mixture_app.command("push")
def mixture_push(
    file: Annotated[Path, typer.Argument(help="the mixture YAML")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="a (small) dataset repo to hold the mixture")],
    revision: Annotated[str | None, typer.Option("--revision", help="branch (default main)")] = None,
    path_in_repo: Annotated[str, typer.Option("--path-in-repo", help="file name in the repo")] = "mixture.yaml",
    token: Token = None,
    endpoint: Endpoint = None,
) -> None:
    """Share a mixture file on the Hub.

    Reads FILE and checks that every dataset@revision it names exists on the Hub (local roots are refused:
    collaborators cannot reach them). Writes FILE as PATH_IN_REPO in the dataset repo REPO_ID, one commit.
    """
    from rich.console import Console

    from glam_lerobot import hub, mixture

    try:
        summary = hub.push_mixture(file, repo_id, revision, path_in_repo=path_in_repo, token=token, endpoint=endpoint)
    except (hub.HubError, mixture.MixtureError) as e:
        _fail(e)
    for line in summary.lines():
        Console(soft_wrap=True).print(line, highlight=False)


@mixture_app.command("pull")
def mixture_pull(
    repo_id: Annotated[str, typer.Argument(help="the dataset repo holding the mixture")],
    output: Annotated[Path, typer.Option("--output", help="where to write the mixture YAML")],
    revision: Annotated[str | None, typer.Option("--revision", help="branch, tag or commit")] = None,
    path_in_repo: Annotated[str, typer.Option("--path-in-repo", help="file name in the repo")] = "mixture.yaml",
    token: Token = None,
    endpoint: Endpoint = None,
) -> None:
    """Download a shared mixture file.

    Reads PATH_IN_REPO from the dataset repo REPO_ID at --revision. Writes it to --output after checking that it
    parses; run `mixture check` on it to pull and check its datasets.
    """
    from rich.console import Console

    from glam_lerobot import hub, mixture

    try:
        path = hub.pull_mixture(repo_id, revision, output, path_in_repo=path_in_repo, token=token, endpoint=endpoint)
    except (hub.HubError, mixture.MixtureError) as e:
        _fail(e)
    Console(soft_wrap=True).print(f"mixture {repo_id}@{revision or 'main'}:{path_in_repo} -> {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("push")(push)
    app.command("pull")(pull)
    app.command("revisions")(revisions)
    app.add_typer(mixture_app, name="mixture")
