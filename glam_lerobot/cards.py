"""Dataset and model cards (README.md), rendered from the Jinja templates in dataset_cards/.

A dataset card is built from the dataset itself (meta/info.json for LeRobot's counts and columns, meta/glam.json
for embodiment, task, sources, parent revision and the history of derived columns), so it can be re-rendered at
any time and never disagrees with the data. The YAML header keeps what LeRobot's own card declares (the
`LeRobot` tag, `robotics` task category and the parquet `configs`), so the Hub's viewer treats it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from glam_lerobot import provenance, schema

PROJECT_URL = "https://github.com/glam-lerobot/glam-lerobot"
DEFAULT_LICENSE = "apache-2.0"
CITATION = """@article{wang2026glam,
  title   = {Imitation from Heterogeneous Demonstrations using Grounded Latent-Action World Models},
  author  = {Wang, Tianyou and Lei, Anson and Watson, Joe and Posner, Ingmar},
  journal = {arXiv preprint arXiv:2606.21672},
  year    = {2026}
}"""
LEROBOT_INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def templates_dir() -> Path:
    """dataset_cards/ in a checkout, or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "dataset_cards", here / "dataset_cards"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"card templates not found beside {here}")


def _render(template: str, **ctx: Any) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug in this module, not an empty cell
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(project_url=PROJECT_URL, citation=CITATION, **ctx)


def _role(key: str, ft: dict) -> str:
    if key in LEROBOT_INDEX_COLUMNS:
        return "LeRobot index"
    if key.startswith(schema.MASK.format(camera="")):
        return "object mask (toolkit, lossless)"
    if key.startswith(schema.IMAGE.format(camera="")):
        return "camera (policy input)"
    if key.startswith("observation."):
        return "policy input"
    if key.startswith("action"):
        return "policy output"
    return "toolkit"


# The unit conventions third-party linters trip over (schema.py): the gripper is an opening in metres in the
# observations and a 0..1 closedness in the action.
UNITS = {
    schema.EE_POSE: "position (m), rotation as 6D (first two matrix columns, unitless), gripper opening (m)",
    schema.STATE: "joint positions (rad), gripper opening (m)",
    schema.ACTION: "joint position targets (rad), gripper command 0..1 (1 = closed): not the state's metres",
    schema.LATENT: "world-model units (IDM posterior mean), no physical unit",
}


def _units(key: str) -> str:
    if key in UNITS:
        return UNITS[key]
    if key.startswith(schema.MASK.format(camera="")):
        return "{0, 255}, three identical channels"
    if key.startswith(schema.IMAGE.format(camera="")):
        return "RGB uint8"
    return ""


def _origin(glam: dict) -> str:
    """'simulated (...)' or 'recorded (...)', from the provenance of the source."""
    src = glam.get("source") if isinstance(glam.get("source"), dict) else {}
    if src.get("format") == "glam-sim" or src.get("simulator"):
        seeds = glam.get("episode_seeds") or []
        span = f", episode seeds {min(seeds)}-{max(seeds)}" if seeds else ""
        return (
            f"simulated: {src.get('simulator', 'mujoco')}, task {glam.get('task', '?')}, embodiment "
            f"{glam.get('embodiment', '?')}{span}"
        )
    if src.get("format"):
        return f"recorded ({src['format']})"
    return "derived" if glam.get("parent") else "unknown"


def _dropped(glam: dict) -> list[str]:
    """Episodes the writer left out, with the reason (`--skip-bad`, or too short)."""
    write = glam.get("write") or {}
    out = []
    for item in write.get("bad") or []:
        out.append(str(item))
    for item in write.get("skipped") or []:
        out.append(" ".join(str(x) for x in item) if isinstance(item, list | tuple) else str(item))
    return out


def _parent_str(parent: Any) -> str | None:
    if not parent:
        return None
    if isinstance(parent, str):
        return parent
    repo = parent.get("repo_id") or parent.get("root") or "?"
    rev = parent.get("revision")
    commit = parent.get("commit")
    out = f"{repo}@{rev}" if rev else str(repo)
    return out + (f" (commit {str(commit)[:12]})" if commit else "")


def _step_columns(step: dict) -> list[str]:
    cols = step.get("columns") or step.get("columns_added") or step.get("added") or []
    return [cols] if isinstance(cols, str) else list(cols)


def dataset_card_text(root: Path | str, repo_id: str | None = None, glam: dict | None = None) -> str:
    """The README.md text for the dataset at `root` (`glam`: its provenance as pushed, if not the local file's)."""
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    glam = provenance.read(root) if glam is None else glam
    repo_id = repo_id or glam.get("repo_id") or root.name
    license_ = glam.get("license") or DEFAULT_LICENSE
    history = [
        {"command": h.get("command"), "columns": _step_columns(h), "model": h.get("model")}
        for h in glam.get("history", [])
        if isinstance(h, dict)
    ]
    models = [h for h in history if h.get("model")]
    tags = ["LeRobot", "glam-lerobot"]
    for t in (glam.get("embodiment"), glam.get("task")):
        if t and str(t) not in tags:
            tags.append(str(t))
    card_data = {
        "license": license_,
        "task_categories": ["robotics"],
        "tags": tags,
        "configs": [{"config_name": "default", "data_files": "data/*/*.parquet"}],
    }
    columns = [
        {
            "key": k,
            "dtype": ft.get("dtype"),
            "shape": "x".join(str(s) for s in ft.get("shape") or ()),
            "role": _role(k, ft),
            "units": _units(k),
        }
        for k, ft in info.get("features", {}).items()
    ]
    source = glam.get("source") if isinstance(glam.get("source"), dict) else None
    if source is not None:
        source = {
            "format": source.get("format"),
            "command": source.get("command"),
            "mapping": source.get("mapping"),
            "files": [
                f if isinstance(f, dict) else {"path": f, "bytes": "", "sha256": ""} for f in source.get("files") or []
            ],
        }
        for f in source["files"]:
            f.setdefault("bytes", "")
            f.setdefault("sha256", "")
    return _render(
        "dataset_card.md",
        card_yaml=yaml.safe_dump(card_data, sort_keys=False).strip(),
        repo_id=repo_id,
        revision=glam.get("revision"),
        description=glam.get("description"),
        codebase_version=info.get("codebase_version", "v3.0"),
        embodiment=glam.get("embodiment"),
        arms=glam.get("arms"),
        task=glam.get("task"),
        robot_type=info.get("robot_type"),
        total_episodes=info.get("total_episodes", 0),
        total_frames=info.get("total_frames", 0),
        fps=info.get("fps"),
        has_action=schema.ACTION in info.get("features", {}),
        parent=_parent_str(glam.get("parent")),
        origin=_origin(glam),
        dropped=_dropped(glam),
        license=license_,
        columns=columns,
        source=source,
        history=history,
        models=models,
    )


def write_dataset_card(root: Path | str, repo_id: str | None = None) -> Path:
    """Render dataset_cards/dataset_card.md for the dataset at `root` into root/README.md."""
    path = Path(root) / "README.md"
    path.write_text(dataset_card_text(root, repo_id))
    return path


def _flat(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in config.items():
        if k == "mixture":
            continue  # shown as its own table
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flat(v, key + ".")
        else:
            text = json.dumps(v) if not isinstance(v, str) else v
            out.append((key, text if len(text) <= 120 else text[:117] + "..."))
    return out


def _mixture_rows(mix: Any) -> list[dict]:
    """Datasets of a mixture given as a Mixture, its to_dict(), or a list of {repo_id, revision, role}."""
    if mix is None:
        return []
    if hasattr(mix, "to_dict"):
        mix = mix.to_dict()
    if isinstance(mix, list):
        return [{"repo_id": d.get("repo_id"), "revision": d.get("revision"), "role": d.get("role", "")} for d in mix]
    rows = []
    for role in ("target", "auxiliary"):
        for d in mix.get(role) or []:
            d = {"repo_id": d} if isinstance(d, str) else d
            rows.append({"repo_id": d.get("repo_id"), "revision": d.get("revision"), "role": role})
    return rows


def model_card_text(folder: Path | str, config: dict, repo_id: str | None = None) -> str:
    folder = Path(folder)
    datasets = _mixture_rows(config.get("mixture"))
    card_data = {
        "license": config.get("license", DEFAULT_LICENSE),
        "library_name": "glam-lerobot",
        "pipeline_tag": "robotics",
        "tags": ["glam", "world-model", "latent-action", "LeRobot", "robotics"],
    }
    ids = sorted({d["repo_id"] for d in datasets if d.get("repo_id") and "/" in str(d["repo_id"])})
    if ids:
        card_data["datasets"] = ids
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "README.md")
    diag_path = folder / "diagnostics.json"
    diagnostics = json.loads(diag_path.read_text()) if diag_path.is_file() else None
    return _render(
        "model_card.md",
        diagnostics=diagnostics,
        card_yaml=yaml.safe_dump(card_data, sort_keys=False).strip(),
        name=config.get("name") or folder.name,
        repo_id=repo_id,
        datasets=datasets,
        settings=_flat(config),
        files=files,
    )


def write_model_card(folder: Path | str, config: dict, repo_id: str | None = None) -> Path:
    """Render dataset_cards/model_card.md for a world-model checkpoint folder into folder/README.md."""
    path = Path(folder) / "README.md"
    path.write_text(model_card_text(folder, config, repo_id))
    return path
