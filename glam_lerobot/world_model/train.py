"""Train a GLAM world model on a mixture: CPU, one GPU, or several through accelerate.

    train_world_model(mixture, output, input="rgb", steps=..., batch_size=..., seed=..., resume=...)

Frames come from the decoded-frame cache (frames.py), so after the first run no video is decoded again. Batches
are drawn per step from a generator seeded by (seed, process, step) (data.StepBatchSampler) and the torch RNG is
saved with every checkpoint, so on CPU two runs with the same seed log the same losses, and a run resumed from
a checkpoint continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glam_lerobot import schema
from glam_lerobot.world_model import checkpoint as ckpt
from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model.glam import GLAMConfig
from glam_lerobot.world_model.methods import build_model


@dataclass
class TrainSettings:
    input: str = "rgb"
    method: str = "glam"  # world_model/methods.py: glam | clam | lapa
    steps: int = 2000
    batch_size: int = 64
    latent_dim: int = 8
    seed: int = 0
    lr: float = 3e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    align_weight: float = 1.0
    align_warmup: int = 0  # steps over which lambda ramps linearly from 0 to align_weight
    kl_weight: float = 1e-3
    min_std: float = 0.1  # soft floor on the posteriors' std (modules.GaussianHead)
    feature_norm: bool = True  # LayerNorm on the visual feature (modules.ConvEncoder); False = the old dead path
    idm_delta: bool = True  # the IDM reads the scaled change x_t+1 - x_t (GLAM.idm_posterior)
    step_forward: bool = False  # forward-model error in per-step units (GLAM.forward_error)
    idm_feature_dropout: float = 0.0  # dropout on the IDM's visual input (GLAM.idm_posterior)
    align_feature_grad: float = 1.0  # share of the alignment KL's gradient that reaches the image encoder
    image_shift: int = 0  # random-shift augmentation of the frames, pixels (GLAMConfig.image_shift)
    target_fraction: float | None = 0.5  # share of target rows in every batch (data.StepBatchSampler); None: uniform
    image_size: int | None = None  # default: the target dataset's frame size
    log_every: int = 10
    save_every: int = 500
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads; 1 is fastest on a busy shared machine
    # alignment diagnostics on held-out same-seed pairs (diagnose.py): a target pair dataset and auxiliary ones
    diagnose_target: str | None = None
    diagnose_aux: list[str] = field(default_factory=list)
    diagnose_every: int = 250
    diagnose_replay: bool = True  # at the end: open-loop Kinova replay of the pairs (runs the simulator)


@dataclass
class TrainSummary:
    output: Path
    steps: int
    resumed_from: int
    last: dict = field(default_factory=dict)
    samples_per_second: float = 0.0
    data_wait_share: float = 0.0
    seconds: float = 0.0
    transitions: int = 0
    diagnostics: list[str] = field(default_factory=list)  # diagnose.lines of the final model, when pairs were given
    warnings: list[str] = field(default_factory=list)
    gate_passed: bool | None = None

    def lines(self) -> list[str]:
        terms = ", ".join(f"{k} {v:.4g}" for k, v in self.last.items() if k != "step")
        return (
            [f"warning: {w}" for w in self.warnings]
            + self.diagnostics
            + [
                f"trained {self.steps - self.resumed_from} steps (to step {self.steps}) on {self.transitions} transitions "
                f"in {self.seconds:.1f} s: {self.samples_per_second:.0f} samples/s, "
                f"{self.data_wait_share:.0%} of a step waiting for data",
                f"last losses: {terms}",
                f"wrote {self.output}/model.safetensors, config.json, losses.jsonl, training_curve.png"
                + (", diagnostics.json" if self.gate_passed is not None else ""),
            ]
        )


def _arms(sources: list[wm_data.Source]) -> int:
    dims = {s.ee_pose.shape[1] for s in sources}
    if len(dims) != 1:
        raise ValueError(
            f"datasets disagree on the end-effector pose size: { {s.name: s.ee_pose.shape[1] for s in sources} }"
        )
    return dims.pop() // schema.EE_POSE_DIM_PER_ARM


def build_config(sources, settings: TrainSettings) -> GLAMConfig:
    size = settings.image_size or wm_data.native_image_size(sources)
    if not 0 <= settings.image_shift < size // 2:
        raise ValueError(
            f"--image-shift must be between 0 and {size // 2 - 1} pixels at {size} px, got {settings.image_shift}"
        )
    return GLAMConfig(
        input=settings.input,
        cameras=wm_data.common_cameras(sources),
        image_size=size,
        arms=_arms(sources),
        latent_dim=settings.latent_dim,
        kl_weight=settings.kl_weight,
        align_weight=settings.align_weight,
        min_std=settings.min_std,
        feature_norm=settings.feature_norm,
        idm_delta=settings.idm_delta,
        step_forward=settings.step_forward,
        idm_feature_dropout=settings.idm_feature_dropout,
        align_feature_grad=settings.align_feature_grad,
        image_shift=settings.image_shift,
        model=settings.method,
    )


def build_training(sources, settings: TrainSettings):
    """(config, dataset, model with its normalisation stats, optimizer) for training on `sources`."""
    config = build_config(sources, settings)
    dataset = wm_data.TransitionDataset(sources, config.cameras, config.input, config.image_size, config.arms)
    model = build_model(config)
    model.set_stats(
        {
            k: {m: torch.from_numpy(v) for m, v in d.items()}
            for k, d in wm_data.compute_stats(sources, config.arms).items()
        }
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return config, dataset, model, optimizer


def train_world_model(
    mixture,
    output: Path | str,
    settings: TrainSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    sources: list | None = None,
) -> TrainSummary:
    """Train (or --resume) GLAM on `mixture` (glam_lerobot.mixture.Mixture) into the folder `output`."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    settings = settings or TrainSettings()
    output = Path(output)
    start_step, state = 0, None
    if output.exists() and any(output.iterdir()):
        last = ckpt.latest_checkpoint(output)
        if not resume:
            raise FileExistsError(
                f"{output} already holds a training run; pass --resume to continue it, or choose another --output"
            )
        if last is None:
            raise FileNotFoundError(f"{output}: --resume, but no finished checkpoint in {output}/checkpoints")
        saved = ckpt.read_config(last)
        settings = TrainSettings(**{**saved["training"]["settings"], "steps": settings.steps})
        state = torch.load(last / ckpt.STATE_FILE, weights_only=False)
        start_step = state["step"]

    if settings.threads:
        torch.set_num_threads(settings.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(settings.seed)
    if sources is None:
        sources = wm_data.load_mixture_sources(mixture, settings.input, progress=progress)
    config, dataset, model, optimizer = build_training(sources, settings)
    if state is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt.latest_checkpoint(output) / ckpt.MODEL_FILE)))
        optimizer.load_state_dict(state["optimizer"])
    model, optimizer = accelerator.prepare(model, optimizer)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])

    sampler = wm_data.StepBatchSampler(
        len(dataset),
        settings.batch_size,
        settings.steps,
        settings.seed,
        start_step,
        accelerator.process_index,
        dataset.is_target(),
        settings.target_fraction,
    )
    pairs = None
    if settings.diagnose_target:
        from glam_lerobot.world_model import diagnose as diag

        pairs = diag.load_pairs(settings.diagnose_target, settings.diagnose_aux, config.input)
    diag_path = output / "diagnostics.jsonl"
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=_whole_batch,
        num_workers=settings.num_workers,
        # its own generator: creating the loader must not draw from the global
        # RNG, or a resumed run would sample different posterior noise
        generator=torch.Generator().manual_seed(settings.seed),
    )
    run_config = {
        "model_type": config.model,
        "name": f"{config.model}-{mixture.name}" if mixture is not None else config.model,
        "model": config.to_dict(),
        "training": {"settings": vars(settings), "step": start_step},
        "mixture": mixture.to_dict() if mixture is not None else None,
        "sources": [
            {
                "repo_id": s.name,
                "role": s.role,
                "revision": s.revision,
                "root": str(s.root),
                "frames": len(s),
                "transitions": int(len(s.transition_rows())),
            }
            for s in sources
        ],
    }
    output.mkdir(parents=True, exist_ok=True)
    losses_path = output / "losses.jsonl"
    for log in (losses_path, diag_path):
        if start_step == 0 and log.exists():
            log.unlink()
        elif log.exists():  # drop lines logged after the checkpoint we resume from
            kept = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= start_step]
            log.write_text("".join(k + "\n" for k in kept))

    wait_s = compute_s = 0.0
    last: dict = {}
    t0 = time.perf_counter()
    model.train()
    with Progress(
        TextColumn("[bold]train-wm"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.description}"),
        TimeRemainingColumn(),
        disable=not progress or not accelerator.is_main_process,
    ) as bar:
        task = bar.add_task("", total=settings.steps, completed=start_step)
        step = start_step
        tick = time.perf_counter()
        for batch in loader:
            got = time.perf_counter()
            wait_s += got - tick
            batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
            warm = min(1.0, step / settings.align_warmup) if settings.align_warmup else 1.0
            loss, terms = model(batch, align_scale=warm)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if settings.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            step += 1
            tick = time.perf_counter()
            compute_s += tick - got
            if step % settings.log_every == 0 or step == settings.steps:
                last = {"step": step, **terms}
                if accelerator.is_main_process:
                    with losses_path.open("a") as f:
                        f.write(json.dumps(last) + "\n")
                bar.update(task, completed=step, description=f"loss {terms['loss']:.4f}")
            if (
                pairs is not None
                and accelerator.is_main_process
                and (step % settings.diagnose_every == 0 or step == settings.steps)
            ):
                report = diag.diagnose(accelerator.unwrap_model(model), pairs, replay=False)
                with diag_path.open("a") as f:
                    f.write(json.dumps({"step": step, **diag.log_row(report)}) + "\n")
            if step % settings.save_every == 0 or step == settings.steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    run_config["training"]["step"] = step
                    ckpt.save_training_checkpoint(output, step, accelerator.unwrap_model(model), run_config, optimizer)
            tick = time.perf_counter()

    seconds = time.perf_counter() - t0
    done = max(step - start_step, 0)
    diag_lines, passed = [], None
    if accelerator.is_main_process:
        run_config["training"]["step"] = step
        ckpt.save_weights(output, accelerator.unwrap_model(model), run_config)
        from glam_lerobot.world_model.plots import training_curve

        if pairs is not None:
            report = diag.diagnose(
                accelerator.unwrap_model(model), pairs, replay=settings.diagnose_replay and pairs.task is not None
            )
            checks = diag.gate(report, read_losses(output) if losses_path.exists() else None, settings.align_warmup)
            diag.write(report, checks, output)
            diag_lines, passed = diag.lines(report, checks), all(c["passed"] for c in checks)
        if losses_path.exists():
            training_curve(losses_path, output / "training_curve.png", diag_path if diag_path.exists() else None)
        _model_card(output, run_config)
    return TrainSummary(
        output=output,
        steps=step,
        resumed_from=start_step,
        last=last,
        samples_per_second=done * settings.batch_size * accelerator.num_processes / max(seconds, 1e-9),
        data_wait_share=wait_s / max(wait_s + compute_s, 1e-9),
        seconds=seconds,
        transitions=len(dataset),
        diagnostics=diag_lines,
        gate_passed=passed,
        warnings=input_warnings(config),
    )


MIN_MASK_SIZE = 64


def input_warnings(config: GLAMConfig) -> list[str]:
    """What about the model's input is known to defeat it (measured on our sim)."""
    if config.input == "masks" and config.image_size < MIN_MASK_SIZE:
        return [
            f"masks at {config.image_size} px: objects are a few pixels wide (at 32 px the overhead mask had a "
            f"median of 1-2 object pixels and a quarter of the frames were empty); use >= {MIN_MASK_SIZE} px"
        ]
    return []


def _whole_batch(batch):
    return batch  # TransitionDataset.__getitems__ already returns the collated batch


def _model_card(output: Path, config: dict) -> None:
    try:
        from glam_lerobot.cards import write_model_card
    except ImportError:
        return
    write_model_card(output, config)


def read_losses(output: Path | str) -> list[dict]:
    path = Path(output) / "losses.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_array(output: Path | str, term: str = "loss") -> np.ndarray:
    return np.array([r[term] for r in read_losses(output)])
