"""Networks of the stage-2 policies (GLAM Appendix E, Table 2).

- `MipNetwork`: the MIP denoiser, 10 residual MLP blocks of width 256 with LayerNorm and Mish.
- `MLP`: the action decoder h_omega^a (4 layers of width 256, ReLU).
- `CnnEncoder`: a small CNN trained from scratch (default: practical on a CPU).
- `Dinov2Encoder`: DINOv2-S/14 (CLS token, 384-d) as in the paper, built here from its published architecture and
  loaded from weights on disk (the official `dinov2_vits14_pretrain.pth` or a safetensors export with the same
  keys); nothing is downloaded.
- `VisionProjector`: both views' features concatenated -> Linear-LN-GELU-Linear-LN (768 -> 256 -> 64 in the paper).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """x + Linear(Mish(Linear(LayerNorm(x))))."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(F.mish(self.fc1(self.norm(x))))


class MipNetwork(nn.Module):
    """net(x (B, H, D), t (B,), cond (B, C)) -> (B, H, D): the whole chunk is flattened into one vector."""

    def __init__(self, chunk_size: int, dim: int, cond_dim: int, width: int = 256, blocks: int = 10):
        super().__init__()
        self.chunk_size, self.dim = chunk_size, dim
        self.inp = nn.Linear(chunk_size * dim + 1 + cond_dim, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, chunk_size * dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        # t only ever takes two values (0 and t*), so the raw scalar is enough (MIP's VanillaMLP does the same).
        h = self.inp(torch.cat([x.flatten(1), t[:, None].to(x.dtype), cond], dim=-1))
        h = self.head(self.norm(self.blocks(F.mish(h))))
        return h.view(-1, self.chunk_size, self.dim)


class MLP(nn.Sequential):
    """`layers` Linear layers with ReLU in between (the action decoder)."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 256, layers: int = 4):
        dims = [in_dim] + [width] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods.append(nn.ReLU())
        super().__init__(*mods)


class CnnEncoder(nn.Module):
    """4 x Conv(k4, s2, p1) + ReLU, then global average pooling: (B, 3, H, W) -> (B, channels[-1])."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_dim = channels[-1]

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images).mean(dim=(2, 3))


# --- DINOv2-S/14: module names follow facebookresearch/dinov2 so its checkpoint loads key for key ---
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), _Attention(dim, heads), _LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), _Mlp(dim, 4 * dim), _LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Dinov2Encoder(nn.Module):
    """DINOv2 ViT (S/14 by default) returning the final-norm CLS token; images are resized to `image_size`."""

    def __init__(
        self,
        weights: str | Path | None = None,
        image_size: int = 224,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        patch: int = 14,
        pretrained_grid: int = 37,
    ):
        super().__init__()
        self.image_size, self.patch, self.out_dim = image_size, patch, dim
        self.patch_embed = _PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pretrained_grid**2, dim))  # 518 px pretraining grid
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused here; present so the checkpoint loads
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"DINOv2 weights not found at {path}: put dinov2_vits14_pretrain.pth (or a .safetensors export) "
                "there, or use the default vision_backbone=cnn"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} is not a DINOv2 ViT checkpoint: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def _pos_embed(self, grid_h: int, grid_w: int) -> Tensor:
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        n = int(math.sqrt(patch_pos.shape[1]))
        if (grid_h, grid_w) != (n, n):
            patch_pos = patch_pos.reshape(1, n, n, -1).permute(0, 3, 1, 2)
            patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
            patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        tokens = self.patch_embed(images)
        grid = self.image_size // self.patch
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self._pos_embed(grid, grid)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


class VisionProjector(nn.Module):
    """Concatenated per-view features -> Linear-LN-GELU-Linear-LN (GLAM Table 2)."""

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Linear(hidden, out_dim),
            nn.LayerNorm(out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_vision_encoder(
    backbone: str, dinov2_image_size: int = 224, cnn_channels: tuple[int, ...] = (32, 64, 128, 256)
) -> nn.Module:
    """The architecture only; DINOv2 weights are loaded by the policy when training starts (Dinov2Encoder.load_weights),
    and a trained checkpoint brings its own."""
    if backbone == "cnn":
        return CnnEncoder(tuple(cnn_channels))
    if backbone == "dinov2_s14":
        return Dinov2Encoder(image_size=dinov2_image_size)
    raise ValueError(f"unknown vision_backbone {backbone!r}: use 'cnn' or 'dinov2_s14'")
