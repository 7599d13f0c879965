"""Patch tokenization: plain ViT, SPT, and Dual-Norm Shifted Patch Tokenization (DNSPT, Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from epir_core.config import EPIRConfig


def diagonal_shifts(x: torch.Tensor, shift: int) -> torch.Tensor:
    """[x, LU, RU, LB, RB]: x and its four diagonal shifts by `shift` px, zero-filled (SPT).

    x: B x C x H x W -> B x 5C x H x W
    """
    H, W = x.shape[-2:]
    padded = F.pad(x, (shift, shift, shift, shift))  # B x C x (H + 2s) x (W + 2s)
    s2 = 2 * shift
    windows = [padded[..., r : r + H, c : c + W] for r, c in ((0, 0), (0, s2), (s2, 0), (s2, s2))]
    return torch.cat([x, *windows], dim=1)


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Non-overlapping patches in row-major order, each flattened as (p1 p2 c), channel fastest.

    x: B x C x H x W -> B x (H/p * W/p) x (p * p * C)
    """
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // patch, patch, W // patch, patch)
    x = x.permute(0, 2, 4, 3, 5, 1)  # B x h x w x p1 x p2 x C
    return x.reshape(B, (H // patch) * (W // patch), patch * patch * C)


class PatchTokenizer(nn.Module):
    """t = LN(FC(LN(P([V; V1..V4])))) for DNSPT; SPT drops the outer LN; plain ViT also drops the
    shift and the inner LN, keeping only FC(P(V))."""

    def __init__(self, config: EPIRConfig) -> None:
        super().__init__()
        self.patch = config.patch_size
        self.shift = config.spt_shift if config.tokenizer != "linear" else None
        self.center = config.center_input
        copies = 5 if self.shift is not None else 1
        patch_dim = copies * config.in_channels * config.patch_size**2  # 735 with the shift
        self.pre_norm = nn.LayerNorm(patch_dim) if self.shift is not None else nn.Identity()
        self.proj = nn.Linear(patch_dim, config.dim)
        self.post_norm = nn.LayerNorm(config.dim) if config.tokenizer == "dnspt" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: B x 3 x 28 x 28 -> B x 16 x 256
        if self.center:
            x = x * 2 - 1
        if self.shift is not None:
            x = diagonal_shifts(x, self.shift)  # B x 15 x 28 x 28
        return self.post_norm(self.proj(self.pre_norm(patchify(x, self.patch))))
