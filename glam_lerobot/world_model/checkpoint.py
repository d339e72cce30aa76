"""World-model folders: model.safetensors + config.json (what `glam-lerobot push` uploads as a model repo).

A training output folder holds
  config.json          {"model_type", "model": GLAMConfig, "training": {...}, "mixture": {...}, "sources": [...]}
  model.safetensors    weights and the normalisation statistics (buffers)
  losses.jsonl         one line per logged step; training_curve.png
  checkpoints/step-N/  resumable states (model.safetensors, config.json, training_state.pt: optimizer, RNG, step)
Every folder is written under a temporary name and renamed when complete, so an interruption never leaves a
half-written checkpoint where a reader (or --resume) would find it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from glam_lerobot import provenance
from glam_lerobot.world_model.glam import GLAM, GLAMConfig

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(folder: Path, model: GLAM, config: dict) -> None:
    """Write model.safetensors and config.json into `folder` (each file replaced atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MODEL_FILE}.tmp"
    save_file(_state_dict(model), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / MODEL_FILE)
    tmp = folder / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(config, indent=2, default=str) + "\n")
    os.replace(tmp, folder / CONFIG_FILE)


def save_training_checkpoint(output: Path, step: int, model: GLAM, config: dict, optimizer, keep: int = 2) -> Path:
    """checkpoints/step-N/ with everything --resume needs; older ones beyond `keep` are removed."""
    ckpts = Path(output) / "checkpoints"
    final = ckpts / f"step-{step:08d}"
    work = ckpts / f".step-{step:08d}.partial"
    if work.exists():
        shutil.rmtree(work)
    save_weights(work, model, config)
    torch.save(
        {"step": step, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
        work / STATE_FILE,
    )
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    for old in sorted(ckpts.glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(output: Path) -> Path | None:
    found = sorted((Path(output) / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def read_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a world-model folder (no {CONFIG_FILE})")
    return json.loads(path.read_text())


def load_world_model(folder: Path | str, device: str | torch.device = "cpu") -> tuple[GLAM, dict]:
    """The model (eval mode) and its config.json from a training output or checkpoint folder."""
    folder = Path(folder)
    config = read_config(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no {MODEL_FILE}")
    from glam_lerobot.world_model.methods import model_classes

    kind = config.get("model_type", "glam")
    if kind not in model_classes():
        raise ValueError(
            f"{folder}/{CONFIG_FILE}: model_type {kind!r} is not a world model of this toolkit "
            f"({', '.join(model_classes())})"
        )
    model = model_classes()[kind](GLAMConfig.from_dict({**config["model"], "model": kind}))
    model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    return model.to(device).eval(), config


def identity(folder: Path | str) -> dict:
    """What provenance records about a world model: where it is, its Hub repo/revision if known, its checksum."""
    folder = Path(folder)
    config = read_config(folder)
    hub = dict(config.get("hub", {}))
    # a folder pulled into the Hub cache is .../models--<ns>--<name>/snapshots/<commit>/
    parts = folder.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        hub.setdefault("repo_id", parts[-3][len("models--") :].replace("--", "/", 1))
        hub.setdefault("revision", parts[-1])
    return {
        "path": str(folder.resolve()),
        "repo_id": hub.get("repo_id"),
        "revision": hub.get("revision"),
        "sha256": provenance.sha256(folder / MODEL_FILE),
        "model_type": config.get("model_type", "glam"),
        "input": config["model"]["input"],
        "latent_dim": config["model"]["latent_dim"],
        "steps": config.get("training", {}).get("step"),
    }
