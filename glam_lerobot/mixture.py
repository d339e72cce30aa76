"""Mixture files: which datasets, at which revisions, are target and which are auxiliary, and how cameras map.

A mixture is the input of every stage after ingest (world-model training, relabelling, the merged training
dataset). It is a small YAML file:

```yaml
name: stack_two_umi
target:    [{repo_id: me/kinova_stack_two, revision: main, root: data/kinova}]   # root optional
auxiliary: [{repo_id: me/umi_stack_two, revision: masks-v1}]
cameras:   {me/umi_stack_two: {top: overhead, front: front}}                     # optional renames
```

- `root` (optional) is a local dataset folder used as is (a local root is not revision-aware: one folder per
  revision). A relative root is taken relative to the mixture file, so a mixture and its data move together.
- Without `root` the dataset comes from the Hub at `revision` (default: LeRobot's `v3.0` tag) into the
  revision-safe cache under `HF_LEROBOT_HOME/hub`.
- `cameras` maps, per dataset, the dataset's own camera names onto the canonical ones in `schema.CAMERAS`
  (`observation.images.<own>` is read as `observation.images.<canonical>`). Cameras not listed keep their name.

Every mistake (a missing revision, a missing local root, a camera that does not map onto `schema.CAMERAS`, a
target dataset without `action`) is a `MixtureError` raised by `load_mixture` / `resolve` / `check_mixture`,
before anything is uploaded or trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from glam_lerobot import schema

ROLES = ("target", "auxiliary")


class MixtureError(ValueError):
    """A mixture file that cannot be used; the message names the file, the dataset and the field."""


@dataclass(frozen=True)
class DatasetRef:
    repo_id: str
    revision: str | None = None
    root: Path | None = None

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.repo_id}{at}" + (f" ({self.root})" if self.root else "")


@dataclass
class Mixture:
    name: str
    target: list[DatasetRef]
    auxiliary: list[DatasetRef] = field(default_factory=list)
    cameras: dict[str, dict[str, str]] = field(default_factory=dict)
    path: Path | None = None  # the file it was read from, for error messages

    def datasets(self) -> list[tuple[DatasetRef, str]]:
        """(ref, role) for every dataset, target first: the order of `mixture.source` indices."""
        return [(r, "target") for r in self.target] + [(r, "auxiliary") for r in self.auxiliary]

    def camera_map(self, repo_id: str) -> dict[str, str]:
        """Dataset camera name -> canonical camera name (identity for cameras not listed)."""
        return dict(self.cameras.get(repo_id, {}))

    def to_dict(self) -> dict:
        def ref(r: DatasetRef) -> dict:
            d: dict = {"repo_id": r.repo_id}
            if r.revision:
                d["revision"] = r.revision
            if r.root:
                d["root"] = str(r.root)
            return d

        out: dict = {"name": self.name, "target": [ref(r) for r in self.target]}
        out["auxiliary"] = [ref(r) for r in self.auxiliary]
        if self.cameras:
            out["cameras"] = self.cameras
        return out


@dataclass
class ResolvedDataset:
    ref: DatasetRef
    role: str  # "target" | "auxiliary"
    root: Path  # a local LeRobot v3 dataset folder at the requested revision


def _where(path: Path | None) -> str:
    return f"mixture {path}" if path else "mixture"


def _ref(entry, where: str, role: str, i: int, base: Path | None) -> DatasetRef:
    at = f"{where}: {role}[{i}]"
    if isinstance(entry, str):  # shorthand: "me/data" or "me/data@rev"
        repo_id, _, rev = entry.partition("@")
        entry = {"repo_id": repo_id, "revision": rev or None}
    if not isinstance(entry, dict):
        raise MixtureError(f"{at}: expected a mapping with repo_id/revision/root, got {entry!r}")
    unknown = set(entry) - {"repo_id", "revision", "root"}
    if unknown:
        raise MixtureError(f"{at}: unknown field(s) {sorted(unknown)} (allowed: repo_id, revision, root)")
    repo_id = entry.get("repo_id")
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise MixtureError(f"{at}.repo_id: expected 'namespace/name', got {repo_id!r}")
    rev = entry.get("revision")
    if rev is not None and not isinstance(rev, (str, int, float)):
        raise MixtureError(f"{at}.revision: expected a branch, tag or commit, got {rev!r}")
    root = entry.get("root")
    if root is not None:
        root = Path(str(root)).expanduser()
        if not root.is_absolute() and base is not None:
            root = base / root
    return DatasetRef(repo_id=repo_id, revision=str(rev) if rev is not None else None, root=root)


def parse_mixture(data: dict, path: Path | None = None) -> Mixture:
    """Build and structurally check a Mixture from the YAML's mapping (nothing is read from disk or the Hub)."""
    where = _where(path)
    if not isinstance(data, dict):
        raise MixtureError(f"{where}: expected a mapping with name/target/auxiliary/cameras")
    unknown = set(data) - {"name", "target", "auxiliary", "cameras"}
    if unknown:
        raise MixtureError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: name, target, auxiliary, cameras)")
    name = data.get("name") or (path.stem if path else None)
    if not name:
        raise MixtureError(f"{where}: missing field 'name'")
    base = path.parent if path else None
    lists = {}
    for role in ROLES:
        entries = data.get(role) or []
        if not isinstance(entries, list):
            raise MixtureError(f"{where}: '{role}' must be a list of datasets")
        lists[role] = [_ref(e, where, role, i, base) for i, e in enumerate(entries)]
    if not lists["target"]:
        raise MixtureError(f"{where}: 'target' must name at least one dataset (the robot with actions)")
    ids = [r.repo_id for r in lists["target"] + lists["auxiliary"]]
    cameras = data.get("cameras") or {}
    if not isinstance(cameras, dict):
        raise MixtureError(f"{where}: 'cameras' must map repo_id -> {{dataset camera: canonical camera}}")
    for repo_id, mapping in cameras.items():
        if repo_id not in ids:
            raise MixtureError(f"{where}: cameras.{repo_id}: no dataset with this repo_id in target or auxiliary")
        if not isinstance(mapping, dict):
            raise MixtureError(f"{where}: cameras.{repo_id}: expected {{dataset camera: canonical camera}}")
        for own, canonical in mapping.items():
            if canonical not in schema.CAMERAS:
                raise MixtureError(
                    f"{where}: cameras.{repo_id}.{own}: {canonical!r} is not a canonical camera "
                    f"(schema.CAMERAS = {list(schema.CAMERAS)})"
                )
        targets = list(mapping.values())
        dup = {c for c in targets if targets.count(c) > 1}
        if dup:
            raise MixtureError(f"{where}: cameras.{repo_id}: several cameras map onto {sorted(dup)}")
    return Mixture(
        name=str(name),
        target=lists["target"],
        auxiliary=lists["auxiliary"],
        cameras={k: {str(a): str(b) for a, b in v.items()} for k, v in cameras.items()},
        path=path,
    )


def load_mixture(path: str | Path) -> Mixture:
    """Read and structurally check a mixture YAML file (see the module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise MixtureError(f"mixture {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MixtureError(f"mixture {path}: not valid YAML: {e}") from e
    return parse_mixture(data, path)


def save_mixture(mixture: Mixture, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mixture.to_dict(), sort_keys=False))
    return path


def resolve(mixture: Mixture, pull: bool = True) -> list[ResolvedDataset]:
    """One local root per dataset at its revision, target first, every dataset checked against the mixture.

    Local roots are used as is. Hub datasets are downloaded into the revision-safe cache (`pull=True`), or must
    already be there (`pull=False`, offline). Raises MixtureError on the first problem, naming the dataset.
    """
    from glam_lerobot import hub  # huggingface_hub is imported lazily: `--help` stays fast

    where = _where(mixture.path)
    out = []
    for ref, role in mixture.datasets():
        if ref.root is not None:
            if not (ref.root / "meta" / "info.json").is_file():
                raise MixtureError(
                    f"{where}: {role} {ref.repo_id}: root {ref.root} is not a LeRobot dataset (no meta/info.json)"
                )
            root = ref.root
            _check_local_revision(where, role, ref)
        else:
            try:
                root = hub.pull_dataset(ref.repo_id, revision=ref.revision, local_only=not pull, progress=False)
            except hub.HubError as e:
                raise MixtureError(f"{where}: {role} {ref.repo_id}: {e}") from e
        resolved = ResolvedDataset(ref=ref, role=role, root=Path(root))
        check_dataset(mixture, resolved)
        out.append(resolved)
    return out


def _check_local_revision(where: str, role: str, ref: DatasetRef) -> None:
    """A local root holds one revision (meta/glam.json says which): it must be the one the mixture names."""
    if not ref.revision or (len(ref.revision) == 40 and all(c in "0123456789abcdef" for c in ref.revision)):
        return  # no revision named, or a commit hash (not recorded locally)
    glam_path = ref.root / schema.GLAM_META_PATH
    recorded = (json.loads(glam_path.read_text()).get("revision") if glam_path.is_file() else None) or "main"
    aliases = {recorded} | ({"v3.0"} if recorded == "main" else set())  # an original is main and LeRobot's v3.0
    if ref.revision not in aliases:
        raise MixtureError(
            f"{where}: {role} {ref.repo_id}: revision {ref.revision!r} was asked for, but root "
            f"{ref.root} holds revision {recorded!r} ({glam_path})"
        )


def dataset_cameras(root: Path) -> list[str]:
    """Camera names of a dataset (the `<camera>` of its `observation.images.<camera>` features)."""
    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    prefix = schema.IMAGE.format(camera="")
    return [k[len(prefix) :] for k in info["features"] if k.startswith(prefix)]


def check_dataset(mixture: Mixture, ds: ResolvedDataset) -> None:
    """A resolved dataset fits the mixture: its cameras map onto schema.CAMERAS and a target has `action`."""
    where = f"{_where(mixture.path)}: {ds.role} {ds.ref.repo_id}"
    info_path = ds.root / "meta" / "info.json"
    features = json.loads(info_path.read_text())["features"]
    if ds.role == "target" and schema.ACTION not in features:
        raise MixtureError(
            f"{where}: a target dataset needs robot actions, but {info_path} has no "
            f"'{schema.ACTION}' feature (list it under auxiliary instead)"
        )
    own = dataset_cameras(ds.root)
    mapping = mixture.camera_map(ds.ref.repo_id)
    for cam in mapping:
        if cam not in own:
            raise MixtureError(
                f"{where}: cameras.{ds.ref.repo_id}.{cam}: the dataset has no camera {cam!r} (it has {own})"
            )
    renamed = [mapping.get(c, c) for c in own]
    bad = [c for c, r in zip(own, renamed, strict=True) if r not in schema.CAMERAS]
    if bad:
        raise MixtureError(
            f"{where}: camera(s) {bad} do not map onto schema.CAMERAS {list(schema.CAMERAS)}; "
            f"add them under cameras.{ds.ref.repo_id}"
        )
    dup = {c for c in renamed if renamed.count(c) > 1}
    if dup:
        raise MixtureError(f"{where}: several cameras map onto {sorted(dup)}")


def check_mixture(mixture: Mixture, pull: bool = True) -> list[dict]:
    """Resolve and check every dataset; one summary row per dataset (role, repo, revision, root, counts, cameras)."""
    rows = []
    for d in resolve(mixture, pull=pull):
        info = json.loads((d.root / "meta" / "info.json").read_text())
        mapping = mixture.camera_map(d.ref.repo_id)
        rows.append(
            {
                "role": d.role,
                "repo_id": d.ref.repo_id,
                "revision": d.ref.revision,
                "root": d.root,
                "episodes": info.get("total_episodes"),
                "frames": info.get("total_frames"),
                "fps": info.get("fps"),
                "action": schema.ACTION in info["features"],
                "cameras": {c: mapping.get(c, c) for c in dataset_cameras(d.root)},
            }
        )
    return rows
