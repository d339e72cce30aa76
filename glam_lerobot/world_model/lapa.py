"""LAPA baseline (Ye et al. 2024; GLAM paper section 4): discrete latent actions through a VQ bottleneck, learned by
next-frame reconstruction on every source.

Built from GLAM's modules (image encoder/decoder, a 5-block ResMLP IDM, the shared forward model with its dual
residual head), so against GLAM only the latent structure differs: the IDM's output goes through a vector
quantiser instead of a Gaussian, and there is no target model (no action encoder, no action decoder, no
alignment). The latent action written by relabel is the quantised code vector itself (continuous coordinates of
discrete codes), so `glam_mip` trains on it unchanged and predicts the code vectors.

Quantiser: NSVQ (noise-substitution VQ, Vali & Baeckstroem 2022), as LAPA's own LAQ uses (laq_model/nsvq.py).
Why NSVQ rather than EMA-VQ: it is what LAPA published, it needs no commitment/codebook loss weights to tune
(the quantisation error is simulated by noise of the same norm, so gradients reach both the encoder and the
codebook through one reconstruction loss), and LAPA pairs it with dead-code replacement, which we follow.
Layout, also LAPA's: a latent action is `groups` tokens (LAPA: 4) each from one shared codebook of
`codebook_size` codes (LAPA: 8); the code dimension is latent_dim / groups (d = 8 -> 4 tokens of 2-d codes), so
the latent the policy sees has the same size d as GLAM's.

Codebook collapse (LAPA issues #17, #50) is watched: every logged step carries `perplexity` (exp of the entropy of
the batch's code usage, at most codebook_size) and `codes_used` (fraction of codes used in the batch); the model
keeps `code_counts` over the whole run (saved with the weights; `codebook_usage(model)` summarises it), and
unused codes are replaced by random encoder outputs on LAPA's schedule (every 10 steps before step 100, every 100
before 1k, every 500 after).

Loss = image reconstruction + next-state MSE through the forward model + next-frame pixel MSE (the decoder on the
predicted next feature: LAPA's objective), on every source. Appendix E's simplifications as for GLAM.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from glam_lerobot.world_model.glam import GLAM, GLAMConfig
from glam_lerobot.world_model.modules import ResMLP

DEFAULT_GROUPS = 4
DEFAULT_CODEBOOK_SIZE = 8


class NSVQ(nn.Module):
    """Noise-substitution vector quantiser over `groups` tokens of `code_dim`, one shared codebook."""

    def __init__(self, groups: int, codebook_size: int, code_dim: int):
        super().__init__()
        self.groups, self.codebook_size, self.code_dim = groups, codebook_size, code_dim
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim) * 0.1)
        self.register_buffer("code_counts", torch.zeros(codebook_size))  # every training token, whole run
        self.register_buffer("recent_counts", torch.zeros(codebook_size))  # since the last replacement
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) -> (N,) index of the nearest code."""
        return torch.cdist(tokens, self.codebook.detach()).argmin(-1)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, groups * code_dim) -> (latent (B, groups * code_dim), code indices (B, groups)).

        Training: z_e + |z_e - q| * eps / |eps| (NSVQ); eval: the code vectors q themselves."""
        b = z_e.shape[0]
        tokens = z_e.reshape(b * self.groups, self.code_dim)
        if self.training and not bool(self.initialised):
            self._init_from(tokens.detach())
        idx = self.nearest(tokens)
        q = self.codebook[idx]
        if self.training:
            noise = torch.randn_like(tokens)
            scale = (tokens - q).norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            out = tokens + scale * noise
            with torch.no_grad():
                counts = torch.bincount(idx, minlength=self.codebook_size).float()
                self.code_counts += counts
                self.recent_counts += counts
                self.updates += 1
                if self._replace_now(int(self.updates)):
                    self._replace_unused(tokens.detach())
        else:
            out = q
        return out.reshape(b, -1), idx.reshape(b, self.groups)

    @staticmethod
    def _replace_now(step: int) -> bool:
        """LAPA's schedule: every 10 updates before 100, every 100 before 1000, every 500 after."""
        every = 10 if step < 100 else 100 if step < 1000 else 500
        return step % every == 0

    def _init_from(self, tokens: torch.Tensor) -> None:
        """Codes start on encoder outputs (a data-dependent start: fewer codes are dead from the first step)."""
        pick = torch.randint(0, len(tokens), (self.codebook_size,), device=tokens.device)
        self.codebook.data.copy_(tokens[pick] + 1e-3 * torch.randn_like(tokens[pick]))
        self.initialised.fill_(True)

    def _replace_unused(self, tokens: torch.Tensor) -> None:
        dead = torch.nonzero(self.recent_counts == 0).flatten()
        if len(dead):
            pick = torch.randint(0, len(tokens), (len(dead),), device=tokens.device)
            self.codebook.data[dead] = tokens[pick] + 1e-3 * torch.randn_like(tokens[pick])
        self.recent_counts.zero_()

    @staticmethod
    def usage(idx: torch.Tensor, codebook_size: int) -> tuple[float, float]:
        """(perplexity, fraction of codes used) of a batch of code indices."""
        counts = torch.bincount(idx.reshape(-1), minlength=codebook_size).float()
        return perplexity(counts), float((counts > 0).float().mean())


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of a histogram of code uses: 1 = one code only (collapse), codebook_size = uniform."""
    p = counts / counts.sum().clamp_min(1.0)
    nz = p[p > 0]
    return float(math.exp(float(-(nz * nz.log()).sum()))) if len(nz) else 0.0


class LAPA(GLAM):
    def __init__(self, config: GLAMConfig):
        super().__init__(config)
        c = config
        groups = int(c.extra.get("groups", DEFAULT_GROUPS))
        size = int(c.extra.get("codebook_size", DEFAULT_CODEBOOK_SIZE))
        if c.latent_dim % groups:
            raise ValueError(f"LAPA: latent_dim {c.latent_dim} is not divisible by groups {groups}")
        # no target model: LAPA learns from pixels only
        del self.action_encoder
        del self.proprio_forward
        del self.action_decoder
        x_dim = c.feature_dim + c.pose_dim
        self.idm = ResMLP(2 * x_dim, c.latent_dim, blocks=5, width=c.mlp_width)  # deterministic pre-quantiser
        self.quantizer = NSVQ(groups, size, c.latent_dim // groups)

    def action_posterior(self, state, action):  # a GLAM method this model does not have
        raise TypeError("LAPA has no action encoder")

    def decode_action(self, z):  # a GLAM method this model does not have
        raise TypeError("LAPA has no action decoder: the latent policy learns its own (glam_mip)")

    def quantise(self, x_t: torch.Tensor, x_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent action, code indices) for transitions between latent states."""
        return self.quantizer(self.idm(torch.cat([x_t, x_next], dim=-1)))

    @torch.no_grad()
    def infer_latents(self, images_t, ee_t, images_next, ee_next) -> torch.Tensor:
        """The quantised code vectors of each transition (what relabel writes)."""
        was = self.quantizer.training
        self.quantizer.eval()
        z, _ = self.quantise(self.latent_state(images_t, ee_t), self.latent_state(images_next, ee_next))
        self.quantizer.train(was)
        return z

    @torch.no_grad()
    def infer_codes(self, images_t, ee_t, images_next, ee_next) -> torch.Tensor:
        was = self.quantizer.training
        self.quantizer.eval()
        _, idx = self.quantise(self.latent_state(images_t, ee_t), self.latent_state(images_next, ee_next))
        self.quantizer.train(was)
        return idx

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term, and under "codes" the code indices the batch used (not a term)."""
        b = batch["images_t"].shape[0]
        pixels = torch.cat([batch["images_t"], batch["images_next"]]).float() / 255.0
        y = self.encoder(pixels)
        recon = F.mse_loss(torch.sigmoid(self.decoder(y)), pixels)
        x_t = torch.cat([y[:b], self._norm("ee_pose", batch["ee_t"])], dim=-1)
        x_next = torch.cat([y[b:], self._norm("ee_pose", batch["ee_next"])], dim=-1)
        z, idx = self.quantise(x_t, x_next)
        pred = self.forward_model(x_t, z)
        forward = (pred - x_next.detach()).pow(2).mean(-1).mean()
        f = self.config.feature_dim
        next_frame = F.mse_loss(torch.sigmoid(self.decoder(pred[:, :f])), pixels[b:])
        return {"recon": recon, "forward": forward, "next_frame": next_frame, "codes": idx}

    def term_weights(self, align_scale: float = 1.0) -> dict[str, float]:
        """Equal weights (align_scale: GLAM's warm-up; LAPA has no alignment term)."""
        return {"recon": 1.0, "forward": 1.0, "next_frame": 1.0}

    def loss(self, batch: dict[str, torch.Tensor], align_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """GLAM's weighted sum, with the batch's codebook use logged beside the terms."""
        terms = self.loss_terms(batch)
        idx = terms.pop("codes")
        total, out = self.weigh(terms)
        ppl, used = NSVQ.usage(idx, self.quantizer.codebook_size)
        out.update(perplexity=ppl, codes_used=used)
        return total, out


def codebook_usage(model: LAPA) -> dict:
    """Codebook use over the whole training run: perplexity, fraction of codes ever used, counts per code."""
    counts = model.quantizer.code_counts.detach().cpu()
    return {
        "codebook_size": model.quantizer.codebook_size,
        "groups": model.quantizer.groups,
        "perplexity": perplexity(counts),
        "fraction_used": float((counts > 0).float().mean()),
        "counts": [int(c) for c in counts.tolist()],
    }
