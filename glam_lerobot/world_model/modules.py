"""Building blocks of the latent-action world models (paper Table 2), shared by GLAM and the baselines.

GLAM, CLAM and LAPA differ only in the structure of the latent action; the image encoder/decoder, residual MLPs,
Gaussian heads and the forward model with its dual residual head are the same modules, so a comparison between
them measures the latent structure and nothing else.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ConvEncoder(nn.Module):
    """4 x (Conv k4 s2 p1, ReLU), a linear map to the visual feature y (d_o = 128), then a LayerNorm.

    All cameras are stacked on the channel axis (2 RGB cameras -> 6 channels, 2 masks -> 2 channels), so one
    feature describes the whole scene, as the paper's single y_t does. The LayerNorm (no learned scale, so the
    encoder cannot shrink y back) puts y on the standardised pose's scale: without it y came out at 0.001-0.01
    against a pose of ~1, and swapping the images of a transition moved its latent by 0.001 (a dead image path).
    """

    def __init__(
        self, in_channels: int, image_size: int, feature_dim: int = 128, width: int = 32, normalise: bool = True
    ):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 (four stride-2 convolutions), got {image_size}")
        chans = [in_channels, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.grid = image_size // 16
        self.out = nn.Linear(chans[-1] * self.grid * self.grid, feature_dim)
        self.norm = nn.LayerNorm(feature_dim, elementwise_affine=False) if normalise else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [0, 1] -> (B, d_o)
        return self.norm(self.out(self.conv(images).flatten(1)))


class ConvDecoder(nn.Module):
    """Linear to a (8w, H/16, W/16) grid, then 4 x ConvTranspose (k4 s2 p1) with ReLU between: y -> image logits."""

    def __init__(self, out_channels: int, image_size: int, feature_dim: int = 128, width: int = 32):
        super().__init__()
        self.grid = image_size // 16
        self.width = width * 8
        self.inp = nn.Linear(feature_dim, self.width * self.grid * self.grid)
        chans = [width * 8, width * 4, width * 2, width, out_channels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            if i < 3:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # (B, d_o) -> (B, C, H, W) logits (sigmoid -> [0, 1])
        h = F.relu(self.inp(y)).view(-1, self.width, self.grid, self.grid)
        return self.deconv(h)


class ResidualBlock(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear, plus the input (Table 2's ResMLP block)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class ResMLP(nn.Module):
    """Linear in -> N residual blocks of width H -> LayerNorm -> Linear out ("N ResMLP / H")."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int = 5, width: int = 256):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.blocks(self.inp(x))))


class MLP(nn.Module):
    """Plain MLP with ReLU: `layers` linear layers in all (Table 2's "4 MLP / 256, ReLU" action decoder)."""

    def __init__(self, in_dim: int, out_dim: int, layers: int = 4, width: int = 256):
        super().__init__()
        dims = [in_dim] + [width] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            mods.append(nn.Linear(a, b))
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GaussianHead(nn.Module):
    """A ResMLP whose output is split into a mean and a log-variance (a diagonal Gaussian posterior).

    `min_std` is a soft floor on the standard deviation (var = min_std^2 + exp(raw)), as Dreamer's minimum std:
    without it the action encoder's variance shrinks without bound (the 1e-3 prior KL hardly resists), and the
    alignment KL, whose mean term is weighted by 1/(2 var_encoder), grows into a squared error weighted ~25x
    that drowns every other term of the loss.
    """

    # log-variance is clamped so that exp() stays finite early in training
    LOGVAR_RANGE = (-10.0, 5.0)

    def __init__(self, in_dim: int, latent_dim: int, blocks: int = 5, width: int = 256, min_std: float = 0.0):
        super().__init__()
        self.net = ResMLP(in_dim, 2 * latent_dim, blocks, width)
        self.min_std = min_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=-1)
        logvar = logvar.clamp(*self.LOGVAR_RANGE)
        if self.min_std > 0:
            logvar = torch.logaddexp(logvar, torch.full_like(logvar, 2.0 * math.log(self.min_std)))
        return mean, logvar


class ForwardModel(nn.Module):
    """Shared forward model p(x_t+1 | x_t, z_t): 4 ResMLP / 256 with a dual head predicting residuals.

    One head predicts the change of the visual feature y, the other the change of the end-effector pose; both
    are added to x_t. Two heads (rather than one wide output) keep the small pose residual from being swamped
    by the 128-d visual one.
    """

    def __init__(self, feature_dim: int, pose_dim: int, latent_dim: int, blocks: int = 4, width: int = 256):
        super().__init__()
        self.feature_dim = feature_dim
        self.trunk = ResMLP(feature_dim + pose_dim + latent_dim, width, blocks, width)
        self.visual_head = nn.Linear(width, feature_dim)
        self.pose_head = nn.Linear(width, pose_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.trunk(torch.cat([x, z], dim=-1)))
        return x + torch.cat([self.visual_head(h), self.pose_head(h)], dim=-1)


def sample(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reparameterised draw from N(mean, exp(logvar))."""
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) || N(0, I)) summed over the latent dimensions: (B,)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def kl_gaussians(
    mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over the latent dimensions: (B,)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1.0).sum(-1)
