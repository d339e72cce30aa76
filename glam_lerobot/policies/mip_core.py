"""MIP, the minimal iterative policy (Pan et al., "Much Ado About Noising", arXiv 2512.01809), as two functions and
an EMA rule, shared by the `glam_mip` (latent chunks) and `mip` (action chunks) policies.

MIP is regression with exactly two network calls:
  step 1: a0 = net(x = 0,          t = 0,  c)          no noise in the input
  step 2: a  = net(x = a0,         t = t*, c)          at inference
  training feeds step 2 a noise-corrupted copy of the TRUE target instead: x = a + (1 - t*) * eps, eps ~ N(0, I)
  loss = |a0 - a|^2 / t*^2 + |a1 - a|^2 / (1 - t*)^2   (squared L2 over the feature axis, mean over batch and chunk)

Interpolant: we use the reference code's form (`mip_loss` / `mip_sampler`): the step-2 training input is
a + (1 - t*) eps and the sampler feeds a0 unscaled. The paper's "origin" form (t* a + (1 - t*) eps, sampler feeding
t* a0) differs by a factor t* = 0.9 on the input; training and inference here both use the code form.

Targets are expected normalised to about [-1, 1] (min-max, as MIP does), so the noise scale 1 - t* = 0.1 means the
same thing for latents and actions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

T_STAR = 0.9


def masked_mean(per_item: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of `per_item` (B, H) over entries where `mask` (B, H) is 1; 0 when nothing is valid.

    `torch.where` (not a product) so that masked entries contribute neither value nor gradient, even if they
    hold NaN or filler."""
    if mask is None:
        return per_item.mean()
    keep = mask > 0.5
    total = torch.where(keep, per_item, torch.zeros_like(per_item)).sum()
    return total / keep.sum().clamp(min=1)


def mip_loss(
    net: nn.Module,
    target: Tensor,
    cond: Tensor,
    mask: Tensor | None = None,
    t_star: float = T_STAR,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """MIP training loss for a chunk `target` (B, H, D) given the conditioning `cond` (B, C).

    `net(x, t, cond)` maps a chunk-shaped input and a time (B,) to a chunk prediction. `mask` (B, H) marks valid
    chunk steps (1) and padding (0). Returns (loss, the step-2 prediction (B, H, D), logged parts)."""
    b = target.shape[0]
    if noise is None:
        noise = torch.randn_like(target)
    t0 = torch.zeros(b, device=target.device, dtype=target.dtype)
    pred0 = net(torch.zeros_like(target), t0, cond)
    noisy = target + (1.0 - t_star) * noise
    pred1 = net(noisy, t0 + t_star, cond)
    step0 = ((pred0 - target) ** 2).sum(-1) / t_star**2
    step1 = ((pred1 - target) ** 2).sum(-1) / (1.0 - t_star) ** 2
    loss0, loss1 = masked_mean(step0, mask), masked_mean(step1, mask)
    return loss0 + loss1, pred1, {"mip_step0": loss0.item(), "mip_step1": loss1.item()}


@torch.no_grad()
def mip_sample(net: nn.Module, cond: Tensor, chunk_shape: tuple[int, int], t_star: float = T_STAR) -> Tensor:
    """The deterministic two-call MIP sampler: (B, C) conditioning -> (B, H, D) chunk."""
    b = cond.shape[0]
    t0 = torch.zeros(b, device=cond.device, dtype=cond.dtype)
    x0 = torch.zeros(b, *chunk_shape, device=cond.device, dtype=cond.dtype)
    pred0 = net(x0, t0, cond)
    return net(pred0, t0 + t_star, cond)


def ema_decay(step: int, decay: float, warmup: bool = True) -> float:
    """Decay for the EMA update after `step` optimizer steps.

    MIP uses a constant 0.995. With `warmup` the decay ramps as min(decay, (1 + n) / (10 + n)), which equals the
    published value after ~1,800 steps but keeps short CPU runs from evaluating mostly the random initialisation."""
    if not warmup:
        return decay
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for parameters and floating-point buffers."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters(), strict=True):
        p_ema.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for b_ema, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        if b.dtype.is_floating_point:
            b_ema.mul_(decay).add_(b.detach(), alpha=1.0 - decay)
        else:
            b_ema.copy_(b)
