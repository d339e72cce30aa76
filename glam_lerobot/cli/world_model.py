"""CLI for the world-model stage: train GLAM, relabel datasets with latent actions, cross-source transfer, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from glam_lerobot.cli import cluster
from glam_lerobot.cli.errors import fail as _fail
from glam_lerobot.cli.errors import workers_value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("train-wm")(train_wm)
    app.command("relabel")(relabel)
    app.command("transfer")(transfer)
    app.command("diagnose")(diagnose)
    latents = typer.Typer(help="Inspect latent actions written by `relabel`.", no_args_is_help=True)
    latents.command("plot")(latents_plot)
    app.add_typer(latents, name="latents")


def _mixture(path: Path):
    from glam_lerobot.mixture import MixtureError, load_mixture

    try:
        return load_mixture(path)
    except MixtureError as exc:
        _fail(str(exc))


def train_wm(
    mixture: Path = typer.Option(..., help="mixture YAML: target and auxiliary datasets at their revisions"),
    output: Path = typer.Option(..., help="output folder: the world model (a pushable model repo) and its logs"),
    input: str = typer.Option("rgb", help="rgb (GLAM) or masks (GLAM-O: reads the mask.<camera> columns)"),
    method: str = typer.Option(
        "glam",
        help="glam, or a baseline: clam (action decoder on the IDM, target data "
        "only) or lapa (VQ latents by next-frame reconstruction)",
    ),
    steps: int = typer.Option(2000, help="optimizer steps (with --resume: the new total)"),
    batch_size: int = typer.Option(64, help="transitions per step (per process)"),
    latent_dim: int = typer.Option(8, help="latent action size d (paper: 8, 16 for stack_three)"),
    seed: int = typer.Option(0, help="seed of the weights and the batches; the same seed gives the same losses on CPU"),
    lr: float = typer.Option(3e-4, help="AdamW learning rate"),
    align_weight: float = typer.Option(
        1.0, help="lambda of KL(q_IDM || sg(q_encoder)); 0 = the ablation without alignment"
    ),
    align_warmup: int = typer.Option(0, help="steps over which lambda ramps up linearly from 0"),
    min_std: float = typer.Option(0.1, help="soft floor on the posteriors' standard deviation (0 = none)"),
    feature_norm: bool = typer.Option(
        True,
        "--feature-norm/--no-feature-norm",
        help="LayerNorm on the visual feature (without it the image path is ~100x weaker than the pose)",
    ),
    idm_delta: bool = typer.Option(
        True,
        "--idm-delta/--no-idm-delta",
        help="the IDM reads x_t and the per-step change x_t+1 - x_t scaled to unit std (instead of x_t, x_t+1)",
    ),
    step_forward: bool = typer.Option(
        False,
        "--step-forward/--no-step-forward",
        help="measure the forward model's pose error in per-step units, image and pose halves weighted alike",
    ),
    idm_feature_dropout: float = typer.Option(
        0.0, help="dropout on the visual part of the IDM's input (training only)"
    ),
    align_feature_grad: float = typer.Option(
        1.0,
        help="share of the alignment KL's gradient that reaches the image encoder (0: only the reconstruction and "
        "forward terms train it)",
    ),
    image_shift: int = typer.Option(
        0, help="random-shift augmentation: both frames of a transition moved by up to this many pixels (training)"
    ),
    target_fraction: float = typer.Option(
        0.5,
        help="share of target-robot rows in every batch (the only rows the "
        "grounding terms see); 0 = draw uniformly over all transitions",
    ),
    diagnose_target: Path = typer.Option(
        None, help="held-out simulated target episodes for the alignment diagnostics (same seeds as --diagnose-aux)"
    ),
    diagnose_aux: list[Path] = typer.Option(
        None, help="held-out auxiliary episodes recorded from the same seeds; repeat for several sources"
    ),
    diagnose_every: int = typer.Option(250, help="log the alignment diagnostics every N steps"),
    image_size: int = typer.Option(
        None, help="resize frames to this square size (multiple of 16) \\[default: the target's]"
    ),
    save_every: int = typer.Option(500, help="checkpoint every N steps (resumable)"),
    log_every: int = typer.Option(10, help="append the loss terms to losses.jsonl every N steps"),
    threads: int = typer.Option(None, help="torch CPU threads (1 is fastest on a busy shared machine)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in OUTPUT from its last checkpoint"),
) -> None:
    """Train the GLAM world model on a mixture (CPU, one GPU, or several with `accelerate launch`).

    Reads every dataset of MIXTURE (frames are decoded once into the frame cache, $GLAM_LEROBOT_CACHE). Writes
    OUTPUT/model.safetensors + config.json (+ README.md model card), losses.jsonl, training_curve.png and
    resumable OUTPUT/checkpoints/step-N/. With --diagnose-target/--diagnose-aux it also logs the alignment
    diagnostics (diagnostics.jsonl, second panel of training_curve.png) and ends with the alignment gate
    (diagnostics.json, reported in the model card): judge the model there before training a policy on it.
    """
    from glam_lerobot.world_model.train import TrainSettings, train_world_model

    mix = _mixture(mixture)
    settings = TrainSettings(
        input=input,
        method=method,
        steps=steps,
        batch_size=batch_size,
        latent_dim=latent_dim,
        seed=seed,
        lr=lr,
        align_weight=align_weight,
        image_size=image_size,
        save_every=save_every,
        log_every=log_every,
        threads=threads,
        align_warmup=align_warmup,
        min_std=min_std,
        feature_norm=feature_norm,
        idm_delta=idm_delta,
        step_forward=step_forward,
        idm_feature_dropout=idm_feature_dropout,
        image_shift=image_shift,
        align_feature_grad=align_feature_grad,
        target_fraction=target_fraction or None,
        diagnose_target=str(diagnose_target) if diagnose_target else None,
        diagnose_aux=[str(p) for p in diagnose_aux or []],
        diagnose_every=diagnose_every,
    )
    if diagnose_target and not diagnose_aux:
        _fail("--diagnose-target needs at least one --diagnose-aux dataset recorded from the same seeds")
    try:
        summary = train_world_model(mix, output, settings, resume=resume)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    for line in summary.lines():
        typer.echo(line)


def relabel(
    world_model: Path = typer.Option(..., help="a world-model folder written by train-wm (or pulled from the Hub)"),
    mixture: Path = typer.Option(..., help="mixture YAML whose datasets get latent actions"),
    output: Path = typer.Option(..., help="output folder: datasets/<name>@<revision>/ and mixture/"),
    revision: str = typer.Option(None, help="name of the new revisions \\[default: glam-latents-<weights sha256[:8]>]"),
    horizon: int = typer.Option(20, help="latent chunk length H of the merged dataset"),
    merged: bool = typer.Option(True, "--merged/--no-merged", help="also write the merged mixture dataset"),
    frames: str = typer.Option(
        "image",
        help="camera frames of the merged dataset: image (PNG per frame; policy training on a CPU 1.1x faster with a "
        "DataLoader worker, 1.8x without, and no FFmpeg needed) or video (AV1, ~3x smaller)",
    ),
    workers: str = typer.Option(
        "auto", callback=workers_value, help="writer processes for the merged dataset, or 'auto'"
    ),
    executor: str = cluster.EXECUTOR,
    tasks: int = typer.Option(
        None,
        help="inference tasks, each a share of whole episodes that loads the world model once \\[default: one "
        "process; on a cluster one task per 50 episodes]",
        rich_help_panel=cluster.PANEL,
    ),
    partition: str = cluster.PARTITION,
    time: str = cluster.TIME,
    cpus_per_task: int = cluster.CPUS,
    gpus_per_task: int = cluster.GPUS,
    env_command: str = cluster.ENV_COMMAND,
    ray_address: str = cluster.RAY_ADDRESS,
) -> None:
    """Label every transition with the IDM posterior mean (Eq. 7), as new dataset revisions.

    Reads the world model and every dataset of MIXTURE (parents are not modified). Writes
    OUTPUT/datasets/<name>@<revision>/ (parent + latent.action, latent.is_pad; provenance names the world model
    and its sha256) and OUTPUT/mixture/: all frames in one LeRobot dataset for `lerobot-train
    --policy.type=glam_mip` (cameras renamed, stored as --frames; mixture.source, mixture.action_is_real,
    latent.chunk, latent.chunk_is_pad, chunk.action, chunk.action_is_pad).
    """
    from glam_lerobot.world_model.relabel import relabel as run

    mix = _mixture(mixture)
    try:
        summary = run(
            world_model,
            mix,
            output,
            revision=revision,
            horizon=horizon,
            merged=merged,
            frames=frames,
            workers=workers,
            executor=cluster.executor_from(
                executor, tasks, partition, time, cpus_per_task, gpus_per_task, env_command, ray_address
            ),
        )
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    for line in summary.lines():
        typer.echo(line)


def transfer(
    world_model: Path = typer.Option(..., help="a world-model folder written by train-wm"),
    root: list[Path] = typer.Option(..., help="a simulated dataset (any embodiment); repeat for several sources"),
    episodes: str = typer.Option(
        None, help="episodes to replay, e.g. 0,3,5-9 (unseen by the world model) \\[default: all]"
    ),
    output: Path = typer.Option(Path("transfer"), help="folder for transfer.json and the PNG strips"),
) -> None:
    """Encode episodes with the IDM, decode with the action decoder, replay open-loop on the simulated Kinova.

    Reads the world model and each ROOT (frames, sim.qpos, meta/glam.json task and episode seeds). Writes
    OUTPUT/transfer.json (success and object-trajectory error per episode and per source) and a PNG strip per
    episode (original above, Kinova replay below).
    """
    from glam_lerobot.world_model.transfer import transfer as run

    try:
        report = run(world_model, root, _episode_list(episodes), output)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    for line in report.lines():
        typer.echo(line)


def diagnose(
    world_model: Path = typer.Option(..., help="a world-model folder written by train-wm"),
    target: Path = typer.Option(..., help="simulated target-robot (Kinova) episodes unseen in training"),
    aux: list[Path] = typer.Option(
        ..., help="auxiliary episodes recorded from the same seeds as TARGET; repeat for several sources"
    ),
    output: Path = typer.Option(None, help="folder for diagnostics.json \\[default: the world-model folder]"),
    replay: bool = typer.Option(
        True, "--replay/--no-replay", help="also replay the decoded latents open-loop on the simulated Kinova (slower)"
    ),
    strict: bool = typer.Option(False, "--strict", help="exit with status 1 when the alignment gate fails"),
) -> None:
    """Alignment diagnostics on unseen same-seed pairs: do two sources get the same latent for the same motion?

    Pairs episodes of TARGET and each AUX by their recording seed (meta/glam.json). Reports the same-seed /
    random latent distance ratio, same-step retrieval, decoded-action error, image sensitivity (frames of another
    scene) and the paired image swap (frames of the other embodiment), per-term gradient norms and (with --replay)
    open-loop Kinova replay success, then the gate (ratio <= 0.1, retrieval >= 90%, image sensitivity >= 0.05,
    decoded-action error <= 0.3, replay >= 80% of the action encoder's, or for CLAM of its target IDM's). Writes
    OUTPUT/diagnostics.json.
    """
    from glam_lerobot.world_model import diagnose as diag
    from glam_lerobot.world_model.checkpoint import load_world_model

    try:
        model, _ = load_world_model(world_model)
        pairs = diag.load_pairs(target, aux, model.config.input)
        report = diag.diagnose(model, pairs, replay=replay)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    checks = diag.gate(report)
    path = diag.write(report, checks, output or world_model)
    for line in diag.lines(report, checks):
        typer.echo(line)
    typer.echo(f"wrote {path}")
    if strict and not all(c["passed"] for c in checks):
        raise typer.Exit(1)


def latents_plot(
    root: list[Path] = typer.Argument(..., help="relabelled datasets (or a merged mixture dataset)"),
    output: Path = typer.Option(Path("latents.png"), help="PNG to write"),
) -> None:
    """All sources' latent actions in one 2-D PCA projection, coloured by source.

    Reads latent.action (and mixture.source for a merged dataset) from each ROOT; writes OUTPUT (PNG).
    """
    from glam_lerobot.world_model.plots import plot_dataset_latents

    try:
        out = plot_dataset_latents(root, output)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    counts = ", ".join(f"{k}: {v}" for k, v in out["counts"].items())
    typer.echo(
        f"wrote {output} ({counts}; PC1/PC2 explain "
        f"{out['explained_variance'][0]:.0%}/{out['explained_variance'][-1]:.0%})"
    )


def _episode_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        try:
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
        except ValueError:
            _fail(f"--episodes: cannot read {part!r} (use e.g. 0,3,5-9)")
    return out
