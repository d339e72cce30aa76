"""CLAM baseline (Liang et al. 2025; GLAM paper section 4): a continuous latent-action model grounded by an action
decoder attached to the IDM.

Built from GLAM's own modules (the image encoder/decoder, the Gaussian IDM, the shared forward model with its dual
residual head, the action decoder), so against GLAM only the latent structure differs:

- GLAM grounds z through a target-only action encoder q_eta(z|s, a) that the IDM is pulled toward (Eq. 5); the
  action decoder reads z ~ q_eta and its gradient never reaches the IDM.
- CLAM has no action encoder: the action decoder reads z ~ q_phi(z|x_t, x_t+1) itself, so the action loss trains
  the IDM directly (`joint_action_decoder_training` in clamrobot/clam_code). This is the design the GLAM paper's
  Appendix A says breaks cross-source transfer, and why CLAM is single-source.

Training data: D_tar only (the paper trains CLAM on the target robot; auxiliary rows of a batch, if any, are
ignored by every term). Loss = image reconstruction + next-state MSE through the forward model + action MSE from
the IDM's latent + 1e-3 KL(q_phi || N(0, I)): GLAM's weights, with GLAM's Appendix E simplifications. Relabel uses
the IDM posterior mean, as for GLAM (GLAM.infer_latents).
"""

from __future__ import annotations

import torch

from glam_lerobot import schema
from glam_lerobot.world_model.glam import GLAM, GLAMConfig
from glam_lerobot.world_model.modules import kl_to_standard_normal, sample


class CLAM(GLAM):
    def __init__(self, config: GLAMConfig):
        super().__init__(config)
        # no target-model posterior and no proprio forward model: the IDM is the only posterior
        del self.action_encoder
        del self.proprio_forward

    def action_posterior(self, state, action):  # a GLAM method this model does not have
        raise TypeError("CLAM has no action encoder: its action decoder reads the IDM's latent")

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term as a tensor, unweighted; GLAM.loss weighs them with term_weights."""
        c = self.config
        tgt = batch["is_target"].float()
        n_tgt = tgt.sum().clamp_min(1.0)

        def target_mean(per_row: torch.Tensor) -> torch.Tensor:
            return (per_row * tgt).sum() / n_tgt

        b = batch["images_t"].shape[0]
        pixels = torch.cat([batch["images_t"], batch["images_next"]]).float() / 255.0
        y = self.encoder(pixels)
        per_image = (torch.sigmoid(self.decoder(y)) - pixels).pow(2).flatten(1).mean(-1)
        recon = target_mean(0.5 * (per_image[:b] + per_image[b:]))

        x_t = torch.cat([y[:b], self._norm("ee_pose", batch["ee_t"])], dim=-1)
        x_next = torch.cat([y[b:], self._norm("ee_pose", batch["ee_next"])], dim=-1)
        mean_i, logvar_i = self.idm_posterior(x_t, x_next)
        z_i = sample(mean_i, logvar_i)
        forward_idm = target_mean((self.forward_model(x_t, z_i) - x_next.detach()).pow(2).mean(-1))
        # the CLAM coupling: the action is decoded from the IDM's latent, so this gradient reaches the IDM
        rel = self._norm("action", schema.relative_action(batch["action"], batch["state_t"], c.arms))
        action = target_mean((self.action_decoder(z_i) - rel).pow(2).mean(-1))
        kl_idm = target_mean(kl_to_standard_normal(mean_i, logvar_i))
        return {"recon": recon, "forward_idm": forward_idm, "action": action, "kl_idm": kl_idm}

    def term_weights(self, align_scale: float = 1.0) -> dict[str, float]:
        """GLAM's weights for the terms CLAM has (align_scale: GLAM's warm-up; CLAM has no alignment term)."""
        return {"recon": 1.0, "forward_idm": 1.0, "action": 1.0, "kl_idm": self.config.kl_weight}


__all__ = ["CLAM"]
