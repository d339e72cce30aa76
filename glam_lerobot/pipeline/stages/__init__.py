"""The stage table: every kind a recipe can `run`, with its settings, inputs and outputs."""

from __future__ import annotations

from pathlib import Path

from glam_lerobot.pipeline.recipe import Kind
from glam_lerobot.pipeline.reporting import plot_stage, summary_stage
from glam_lerobot.pipeline.stages.data import ingest_stage, masks_stage, mixture_stage, push_stage, record_stage
from glam_lerobot.pipeline.stages.policy import evaluate_stage, train_policy_stage
from glam_lerobot.pipeline.stages.world_model import relabel_stage, train_wm_stage, transfer_stage


def _relabel_outputs(out: dict[str, Path]) -> dict[str, Path]:
    return {"merged": out["output"] / "mixture", "datasets": out["output"] / "datasets"}


def _policy_outputs(out: dict[str, Path]) -> dict[str, Path]:
    return {"checkpoint": out["policy"] / "checkpoints" / "last" / "pretrained_model"}


KINDS: dict[str, Kind] = {
    "record": Kind(
        record_stage,
        ("embodiment", "task", "episodes", "seed", "image_size", "masks", "workers", "repo_id"),
        required=("embodiment", "task", "episodes"),
        outputs=("dataset",),
        help="sim record: scripted-expert episodes in MuJoCo -> a LeRobot dataset",
    ),
    "ingest": Kind(
        ingest_stage,
        ("format", "paths", "repo_id", "options", "workers", "skip_bad"),
        required=("format", "paths", "repo_id"),
        inputs=("paths",),
        outputs=("dataset",),
        help="raw recordings (umi zarr, rosbag, ...) -> a LeRobot dataset; options go to the reader's plan()",
    ),
    "masks": Kind(
        masks_stage,
        (
            "dataset",
            "backend",
            "model",
            "prompt",
            "objects",
            "revision",
            "cameras",
            "batch",
            "conf",
            "device",
            "imgsz",
            "tracker",
        ),
        required=("dataset",),
        inputs=("dataset",),
        outputs=("dataset",),
        help="masks add: a new revision with object-mask columns",
    ),
    "push": Kind(
        push_stage,
        ("path", "repo_id", "revision", "private"),
        required=("path", "repo_id"),
        inputs=("path",),
        help="push a dataset or world model to the Hub (HF_ENDPOINT, HF_TOKEN)",
    ),
    "mixture": Kind(
        mixture_stage,
        ("name", "target", "auxiliary", "cameras"),
        required=("target",),
        inputs=("target", "auxiliary"),
        outputs=("mixture",),
        help="a mixture file: local dataset folders or {repo_id, revision} as target / auxiliary",
    ),
    "train_wm": Kind(
        train_wm_stage,
        (
            "mixture",
            "method",
            "input",
            "steps",
            "batch_size",
            "latent_dim",
            "seed",
            "lr",
            "align_weight",
            "kl_weight",
            "image_size",
            "image_shift",
            "save_every",
            "log_every",
            "threads",
            "diagnose_target",
            "diagnose_aux",
            "diagnose_every",
        ),
        required=("mixture",),
        inputs=("mixture", "diagnose_target", "diagnose_aux"),
        outputs=("world_model",),
        help="train-wm: the GLAM world model (resumes from its last checkpoint); with diagnose_target / "
        "diagnose_aux (held-out same-seed pair datasets) it ends with the alignment gate",
    ),
    "relabel": Kind(
        relabel_stage,
        ("world_model", "mixture", "revision", "horizon", "merged", "frames", "workers"),
        required=("world_model", "mixture"),
        inputs=("world_model", "mixture"),
        outputs=("output",),
        derived=_relabel_outputs,
        help="relabel: latent-action revisions (output/datasets) and the merged mixture (output/mixture)",
    ),
    "train_policy": Kind(
        train_policy_stage,
        (
            "dataset",
            "policy",
            "steps",
            "batch_size",
            "seed",
            "device",
            "save_freq",
            "log_freq",
            "num_workers",
            "repo_id",
            "threads",
            "roles",
            "args",
        ),
        required=("dataset",),
        inputs=("dataset",),
        outputs=("policy",),
        derived=_policy_outputs,
        help="stock lerobot-train --policy.type=glam_mip|mip (args: extra --key=value)",
        subprocess=True,
    ),
    "evaluate": Kind(
        evaluate_stage,
        (
            "policy",
            "task",
            "episodes",
            "batch_size",
            "image_size",
            "episode_length",
            "seed",
            "device",
            "threads",
            "args",
        ),
        required=("policy", "task"),
        inputs=("policy",),
        outputs=("eval",),
        help="stock lerobot-eval --env.type=glam_kinova: success rate in the simulator",
        subprocess=True,
    ),
    "transfer": Kind(
        transfer_stage,
        ("world_model", "datasets", "episodes", "image_size"),
        required=("world_model", "datasets"),
        inputs=("world_model", "datasets"),
        outputs=("output",),
        help="transfer: replay decoded latents of other sources on the simulated Kinova",
    ),
    "plot": Kind(
        plot_stage,
        ("world_models", "policies", "latents", "evals"),
        inputs=("world_models", "policies", "latents", "evals"),
        outputs=("output",),
        help="PNG plots: training curves, latents by source (PCA), success rates",
    ),
    "summary": Kind(
        summary_stage,
        ("full_scale",),
        outputs=("output",),
        help="summary.md/json: success rates, where every stage wrote, what full scale changes",
    ),
}
