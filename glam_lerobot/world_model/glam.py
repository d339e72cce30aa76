"""GLAM: the grounded latent-action world model (paper section 3.1, Eq. 3-6, Appendix E) and its loss.

Two generative models share one latent action z (prior N(0, I)):
- heterogeneous (every source, observations only): image encoder q_psi(y|o), IDM q_phi(z|x_t, x_t+1), shared
  forward model p_theta(x_t+1|x_t, z), image decoder p_psi(o|y); latent state x = (y, ee_pose).
- target (target robot only): action encoder q_eta(z|s, a), proprio forward p(s_t+1|s_t, z), action decoder p(a|z).
The asymmetric KL(q_phi || stopgrad(q_eta)) on target transitions binds them (Eq. 5).

Appendix E simplifications, all followed: no KL on the latent state; the transition NLL is a deterministic
next-state MSE through the shared forward model, for z drawn from BOTH posteriors; KL-to-prior weight 1e-3 on
both posteriors; lambda = 1.

Choices the paper leaves open (written down here once):
- cameras are stacked on the channel axis and encoded together into one y (d_o = 128);
- every MSE is a mean over its dimensions, every KL a sum over the latent dimensions (so the 1e-3 weight
  means the same thing for d = 8 and d = 16), target-only terms are means over the target rows of a batch;
- the next-state target x_t+1 is detached: with a deterministic encoder and no latent-state KL, the encoder
  could otherwise shrink y to make the forward MSE vanish; the image reconstruction trains the encoder;
- actions inside the model are relative (schema.relative_action) and every numeric input is standardised
  with statistics of the training mixture, stored with the weights;
- except the 6D rotation of ee_pose, which keeps the identity (schema.ee_rotation_dims). Standardised, the two
  tilt entries (which only the Kinova's servo error moves, std ~0.013; the mocap UMI never tilts) became the
  Kinova's largest motion signal and split the sources;
- every batch is half target rows (data.StepBatchSampler, `target_fraction`): the grounding terms see only
  target rows, and a uniform draw from 20 target + 80 auxiliary episodes gave them ~6 of 32;
- the visual feature y goes through a LayerNorm without learned scale (modules.ConvEncoder): unnormalised it
  came out at 0.001-0.01 beside a pose of ~1 and the IDM ignored the images (image-swap sensitivity 0.04);
- the IDM reads (x_t, x_t+1 - x_t) with the pose change scaled by the per-step std of the change
  (`idm_delta`, idm_posterior): a step moves the gripper by 0.03-0.15 standardised units, which the IDM could
  not resolve under unit-scale image features;
- both posteriors have a soft std floor (`min_std` = 0.1, Dreamer-style) so the action encoder's variance
  cannot collapse and turn the alignment KL into an ever more heavily weighted squared error.
Measured effect of each (lift, 10 Kinova + 20 UMI episodes, 1,500 steps, 24 unseen same-seed pairs, one seed):
benchmarks/results/wm-alignment/. Tried and left off by default, one seed each unless said (24 pairs, 1,500 steps):
- `step_forward` (the forward model's pose error in per-step units, image and pose halves weighted alike) raises
  the forward gradient into the IDM ~10x and leaves the gate where it was (2 seeds: retrieval 85/83%, decoded-action
  error 0.36, UMI replay 5/24 and 12/24 against 14/24 and 11/24 without it);
- the IDM overfits its 10 target episodes: its latents decode to the Kinova's actions with error 0.12 on training
  transitions and 0.51 on held-out ones (a pose-only MLP trained to predict the encoder's latents: 0.21). The
  alignment gradient into the image encoder is where that memory lives: with `align_feature_grad` 0 the
  held-out error falls to 0.32 (the gate's decoded-action error 0.38 -> 0.26), retrieval rises to 95% and the distance ratio to 0.05, but the latent stops
  reading the images (image swap 0.002) and UMI replay is 11/24 (encoder 16/24);
- `idm_feature_dropout` 0.5 keeps the images (swap 0.052) and replays 18/24 (encoder 20/24) but leaves retrieval
  (83%) and the action error (0.375) where they were;
- 3,000 steps instead of 1,500 (2 seeds): replay 17/24 and 22/24 (encoders 14 and 15), image swap 0.057/0.064,
  retrieval 85/82%, action error 0.375/0.381: replay and images improve with training, the overfit does not;
- 20 target episodes instead of 10 (same 20 UMI, 1,500 steps, 2 seeds): probe 0.15 / 0.43 and 0.12 / 0.45
  (training / held out), retrieval 92/90%, action error 0.31/0.33, UMI replay 22/24 and 12/24 (encoders 22 and 17):
  the gap narrows with target data but does not close;
- `image_shift` 4 (DrQ random shift, 10 target episodes, 2 seeds): held-out probe error 0.51 -> 0.31, gate action
  error 0.24, retrieval 95-96%, UMI replay 21/24 and 18/24, but image swap 0.008, and in the embedded default
  GLAM-O 29/100 rollouts with it against 33/100 without (2 seeds): off by default. At the starved benchmark's
  scale (10 Kinova + 80 UMI, 3 seeds, benchmarks/results/lift-starved-shift/): retrieval 94-95%, decoded-action
  error 0.23, UMI replay 20/24 (encoder 19/24, seed 0), image sensitivity (another scene's frames) 0.043-0.049
  against the defaults' 0.35-0.38: the gate fails only there, narrowly; policy 215/300 against 197/300
  (+6.0 [-1.4, +13.3]): not a measurable gain yet, so still off by default.
Still open: the alignment KL's gradient into the IDM remains ~10^4 times the forward model's (the floor does not
bind before ~1,500 steps), no GLAM setting passes every gate criterion (a CLAM seed does: README), and on RGB
the live image path lets the IDM read which embodiment it sees (distance ratio 0.06 without the LayerNorm, 0.17 with it); on masks it does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from glam_lerobot import schema
from glam_lerobot.world_model.modules import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    ForwardModel,
    GaussianHead,
    ResMLP,
    kl_gaussians,
    kl_to_standard_normal,
    sample,
)


@dataclass
class GLAMConfig:
    input: str = "rgb"  # "rgb" (GLAM) or "masks" (GLAM-O)
    cameras: tuple[str, ...] = schema.CAMERAS
    image_size: int = 64
    arms: int = 1
    latent_dim: int = 8  # d (16 for stack_three)
    feature_dim: int = 128  # d_o
    conv_width: int = 32
    mlp_width: int = 256
    kl_weight: float = 1e-3
    align_weight: float = 1.0  # lambda; 0 is the ablation without the alignment term
    min_std: float = 0.1  # soft floor on both posteriors' std (modules.GaussianHead)
    feature_norm: bool = True  # LayerNorm on the visual feature y (modules.ConvEncoder)
    idm_delta: bool = True  # the IDM reads (x_t, scaled x_t+1 - x_t) instead of (x_t, x_t+1): see idm_posterior
    step_forward: bool = False  # forward-model error in per-step units, pose and image halves weighted alike
    idm_feature_dropout: float = 0.0  # dropout on the visual part of the IDM's input, in training only
    align_feature_grad: float = 1.0  # scale of the alignment KL's gradient into the image encoder (0: none)
    image_shift: int = 0  # training only: both frames of a transition shifted by up to this many pixels (DrQ)
    model: str = "glam"
    extra: dict = field(default_factory=dict)

    @property
    def channels_per_camera(self) -> int:
        return 3 if self.input == "rgb" else 1

    @property
    def in_channels(self) -> int:
        return self.channels_per_camera * len(self.cameras)

    @property
    def pose_dim(self) -> int:
        return schema.EE_POSE_DIM_PER_ARM * self.arms

    @property
    def state_dim(self) -> int:
        return schema.STATE_DIM_PER_ARM * self.arms

    def image_keys(self) -> list[str]:
        """The dataset column read for each camera (RGB video or the object mask)."""
        key = schema.image_key if self.input == "rgb" else schema.mask_key
        return [key(cam) for cam in self.cameras]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GLAMConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["cameras"] = tuple(known.get("cameras", schema.CAMERAS))
        # models saved before these options existed were trained without them
        known.setdefault("min_std", 0.0)
        known.setdefault("feature_norm", False)
        known.setdefault("idm_delta", False)
        known.setdefault("step_forward", False)
        known.setdefault("idm_feature_dropout", 0.0)
        known.setdefault("image_shift", 0)
        if "align_into_features" in d:  # saved by the first version of this option (a bool)
            known.setdefault("align_feature_grad", 1.0 if d["align_into_features"] else 0.0)
        return cls(**known)


# Normalisation statistics kept as buffers, so they travel inside model.safetensors.
STAT_NAMES = ("ee_pose", "state", "action", "ee_delta")


class GLAM(nn.Module):
    def __init__(self, config: GLAMConfig):
        super().__init__()
        if config.input not in ("rgb", "masks"):
            raise ValueError(f"input must be 'rgb' or 'masks', got {config.input!r}")
        self.config = c = config
        d, w = c.latent_dim, c.mlp_width
        x_dim = c.feature_dim + c.pose_dim
        self.encoder = ConvEncoder(c.in_channels, c.image_size, c.feature_dim, c.conv_width, c.feature_norm)
        self.decoder = ConvDecoder(c.in_channels, c.image_size, c.feature_dim, c.conv_width)
        self.idm = GaussianHead(2 * x_dim, d, blocks=5, width=w, min_std=c.min_std)
        self.action_encoder = GaussianHead(2 * c.state_dim, d, blocks=5, width=w, min_std=c.min_std)
        self.forward_model = ForwardModel(c.feature_dim, c.pose_dim, d, blocks=4, width=w)
        self.proprio_forward = _ProprioForward(c.state_dim, d, w)
        self.action_decoder = MLP(d, c.state_dim, layers=4, width=w)
        stats = [("ee_pose", c.pose_dim), ("state", c.state_dim), ("action", c.state_dim)]
        for name, dim in stats + ([("ee_delta", c.pose_dim)] if c.idm_delta or c.step_forward else []):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    # ---- normalisation ---------------------------------------------------------------------------------------
    def set_stats(self, stats: dict[str, dict[str, torch.Tensor]]) -> None:
        """stats[name] = {"mean", "std"} for ee_pose, state and the *relative* action."""
        for name in STAT_NAMES:
            if name in stats and hasattr(self, f"{name}_mean"):
                getattr(self, f"{name}_mean").copy_(torch.as_tensor(stats[name]["mean"]))
                std = torch.as_tensor(stats[name]["std"]).clamp_min(1e-3)  # constant dims stay finite
                getattr(self, f"{name}_std").copy_(std)

    def _norm(self, name: str, v: torch.Tensor) -> torch.Tensor:
        return (v - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def _denorm(self, name: str, v: torch.Tensor) -> torch.Tensor:
        return v * getattr(self, f"{name}_std") + getattr(self, f"{name}_mean")

    # ---- the posteriors and decoders -------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 (cameras stacked on C) -> visual feature y (B, d_o)."""
        return self.encoder(images.float() / 255.0)

    def latent_state(self, images: torch.Tensor, ee_pose: torch.Tensor) -> torch.Tensor:
        """x = (y, normalised ee pose)."""
        return torch.cat([self.encode_images(images), self._norm("ee_pose", ee_pose)], dim=-1)

    def idm_posterior(self, x_t: torch.Tensor, x_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_phi(z | x_t, x_t+1). With idm_delta the second half of the input is the change x_t+1 - x_t, its pose
        part divided by the per-step std of the pose change (the "ee_delta" statistics): one step moves the
        gripper by ~0.03-0.15 standardised units, which the IDM otherwise has to resolve under unit-scale image
        features."""
        f, p = self.config.feature_dim, self.config.idm_feature_dropout
        if not self.config.idm_delta:
            parts = [x_t[:, :f], x_t[:, f:], x_next[:, :f], x_next[:, f:]]
        else:
            change = x_next - x_t
            pose_change = change[:, f:] * (
                self.ee_pose_std / self.ee_delta_std
            )  # undo the pose scale, apply the step's
            parts = [x_t[:, :f], x_t[:, f:], change[:, :f], pose_change]
        if p > 0:  # the visual parts (0 and 2) only: the pose is what the grounding needs
            parts = [F.dropout(v, p, self.training) if i % 2 == 0 else v for i, v in enumerate(parts)]
        return self.idm(torch.cat(parts, dim=-1))

    def forward_error(self, x_t: torch.Tensor, z: torch.Tensor, target_next: torch.Tensor) -> torch.Tensor:
        """Per-row squared error of the shared forward model p_theta(x_t+1 | x_t, z): (B,).

        Plain: the mean over all d_o + pose dimensions. With step_forward the pose error is measured in units of
        the per-step pose change (the "ee_delta" statistics) and the image and pose halves are averaged
        separately and added: a step moves the standardised pose by ~0.05, so the plain error is ~1e-3 and its
        gradient into the IDM ~1e-4 of the alignment KL's (the grounding hardly trained the IDM)."""
        err = self.forward_model(x_t, z) - target_next
        if not self.config.step_forward:
            return err.pow(2).mean(-1)
        f = self.config.feature_dim
        pose_err = err[:, f:] * (self.ee_pose_std / self.ee_delta_std)
        return err[:, :f].pow(2).mean(-1) + pose_err.pow(2).mean(-1)

    def action_posterior(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_eta(z | s, a) from the absolute stored action (converted to relative here)."""
        rel = schema.relative_action(action, state, self.config.arms)
        return self.action_encoder(torch.cat([self._norm("state", state), self._norm("action", rel)], dim=-1))

    def decode_action(self, z: torch.Tensor) -> torch.Tensor:
        """p(a | z) mean: the *relative* action in robot units (use schema.absolute_action to execute it)."""
        return self._denorm("action", self.action_decoder(z))

    def predict_state(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Proprio forward model: s_t+1 predicted from s_t and z, in robot units."""
        s = self._norm("state", state)
        return self._denorm("state", s + self.proprio_forward(s, z))

    @torch.no_grad()
    def infer_latents(self, images_t, ee_t, images_next, ee_next) -> torch.Tensor:
        """Eq. 7: the IDM posterior mean for each transition (what relabel writes)."""
        mean, _ = self.idm_posterior(self.latent_state(images_t, ee_t), self.latent_state(images_next, ee_next))
        return mean

    # ---- Eq. 6 with the Appendix E simplifications -----------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], align_scale: float = 1.0) -> tuple[torch.Tensor, dict]:
        """The training loss (forward() so that accelerate's DDP wrapper sees the call)."""
        return self.loss(batch, align_scale)

    def loss(self, batch: dict[str, torch.Tensor], align_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted sum of `loss_terms`; `align_scale` multiplies lambda (the trainer's warm-up)."""
        return self.weigh(self.loss_terms(batch), align_scale)

    def weigh(self, terms: dict[str, torch.Tensor], align_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, logged terms): the one place term_weights are applied, for this model and the baselines built on
        it (diagnose reads the same weights for its per-term gradients)."""
        weights = self.term_weights(align_scale)
        total = sum(weights[k] * terms[k] for k in weights)
        return total, {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def term_weights(self, align_scale: float = 1.0) -> dict[str, float]:
        c = self.config
        return {
            "recon": 1.0,
            "forward_idm": 1.0,
            "forward_enc": 1.0,
            "proprio": 1.0,
            "action": 1.0,
            "kl_idm": c.kl_weight,
            "kl_enc": c.kl_weight,
            "align": c.align_weight * align_scale,
        }

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every term of the loss, unweighted. batch: images_t / images_next (B, C, H, W) uint8, ee_t / ee_next
        (B, P), state_t / state_next / action (B, S) (zeros on auxiliary rows), is_target (B,) in {0, 1}."""
        c = self.config
        images_t, images_next = batch["images_t"], batch["images_next"]
        if self.training and c.image_shift:
            images_t, images_next = random_shift(images_t, images_next, c.image_shift)
        pixels = torch.cat([images_t, images_next]).float() / 255.0
        y = self.encoder(pixels)
        recon = F.mse_loss(torch.sigmoid(self.decoder(y)), pixels)

        b = batch["images_t"].shape[0]
        x_t = torch.cat([y[:b], self._norm("ee_pose", batch["ee_t"])], dim=-1)
        x_next = torch.cat([y[b:], self._norm("ee_pose", batch["ee_next"])], dim=-1)
        target_next = x_next.detach()

        mean_i, logvar_i = self.idm_posterior(x_t, x_next)
        z_i = sample(mean_i, logvar_i)
        forward_idm = self.forward_error(x_t, z_i, target_next).mean()
        kl_idm = kl_to_standard_normal(mean_i, logvar_i).mean()

        tgt = batch["is_target"].float()
        n_tgt = tgt.sum().clamp_min(1.0)

        def target_mean(per_row: torch.Tensor) -> torch.Tensor:
            return (per_row * tgt).sum() / n_tgt

        state, state_next = batch["state_t"], batch["state_next"]
        mean_e, logvar_e = self.action_posterior(state, batch["action"])
        z_e = sample(mean_e, logvar_e)
        forward_enc = target_mean(self.forward_error(x_t, z_e, target_next))
        s_norm, s_next_norm = self._norm("state", state), self._norm("state", state_next)
        proprio = target_mean((s_norm + self.proprio_forward(s_norm, z_e) - s_next_norm).pow(2).mean(-1))
        rel = self._norm("action", schema.relative_action(batch["action"], state, c.arms))
        action = target_mean((self.action_decoder(z_e) - rel).pow(2).mean(-1))
        kl_enc = target_mean(kl_to_standard_normal(mean_e, logvar_e))
        # Eq. 5: the IDM is pulled toward the action encoder, never the other way round.
        if c.align_feature_grad != 1.0:  # ... and into the image encoder only with this share of its gradient
            f, g = c.feature_dim, c.align_feature_grad

            def scaled(x: torch.Tensor) -> torch.Tensor:  # same values, gradient into y scaled by g
                y = x[:, :f]
                return torch.cat([y.detach() + g * (y - y.detach()), x[:, f:]], dim=-1)

            mean_i, logvar_i = self.idm_posterior(scaled(x_t), scaled(x_next))
        align = target_mean(kl_gaussians(mean_i, logvar_i, mean_e.detach(), logvar_e.detach()))
        return {
            "recon": recon,
            "forward_idm": forward_idm,
            "forward_enc": forward_enc,
            "proprio": proprio,
            "action": action,
            "kl_idm": kl_idm,
            "kl_enc": kl_enc,
            "align": align,
            "encoder_logvar": target_mean(logvar_e.mean(-1)).detach(),
        }


class _ProprioForward(nn.Module):
    """p(s_t+1 | s_t, z): 5 ResMLP / 256 predicting the (normalised) state change."""

    def __init__(self, state_dim: int, latent_dim: int, width: int):
        super().__init__()
        self.net = ResMLP(state_dim + latent_dim, state_dim, blocks=5, width=width)

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, z], dim=-1))


def random_shift(images_t: torch.Tensor, images_next: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DrQ's augmentation: pad by `pad` pixels (edge values) and crop back at a random offset per transition, the
    same offset for both frames, so the motion between them is kept and only where the scene sits changes."""
    b, c, h, w = images_t.shape
    padded = F.pad(torch.cat([images_t, images_next], 1).float(), (pad, pad, pad, pad), mode="replicate")
    dy, dx = (torch.randint(0, 2 * pad + 1, (b,)) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(2 * c)[None, :, None, None], rows, cols]
    return out[:, :c], out[:, c:]
