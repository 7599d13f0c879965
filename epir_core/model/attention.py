"""Multi-head self-attention and ITALS, its locality variant (Eqs. 10-12).

ITALS masks each token's attention to itself and divides the logits by a learnable temperature,
which sharpens the softmax on small data sets (SPT's Locality Self-Attention).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from epir_core.config import EPIRConfig


def diagonal_mask(n: int, device: torch.device) -> torch.Tensor:
    """N x N bool, True on the diagonal. Built per call for the current N (17, 11 or 4 tokens) from an
    arange comparison: a bool identity (eye) exports to an EyeLike that ONNX Runtime rejects."""
    idx = torch.arange(n, device=device)
    return idx[:, None] == idx[None, :]


class Attention(nn.Module):
    def __init__(self, config: EPIRConfig, locality: bool) -> None:
        super().__init__()
        self.heads, self.dim_head = config.heads, config.dim_head
        inner = config.heads * config.dim_head  # 255
        self.locality = locality
        self.prop_attn = config.prop_attn
        self.to_qkv = nn.Linear(config.dim, 3 * inner, bias=False)
        self.attn_drop = nn.Dropout(config.dropout)
        self.proj = nn.Linear(inner, config.dim)
        if locality:
            # tau is stored as log(1 / tau) so that it stays positive and cannot reach 0 (fp16 overflow);
            # the initial 1 / tau = dim_head^-0.5 is the usual scaled-dot-product scale.
            n_temps = config.heads if config.temperature == "per_head" else 1
            self.log_scale = nn.Parameter(torch.full((n_temps, 1, 1), math.log(config.dim_head**-0.5)))
        else:
            self.scale = config.dim_head**-0.5

    def forward(
        self, x: torch.Tensor, size: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: B x N x D; size: B x N x 1 token sizes (used only with proportional attention).

        Returns the output B x N x D, the head-averaged keys B x N x dh (ToMe's merge metric) and the
        post-softmax attention B x H x N x N (DTSM's maps, taken before dropout as in TransFG).
        """
        B, N, _ = x.shape
        qkv = self.to_qkv(x).reshape(B, N, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each B x H x N x dh
        # einsum (not torch.matmul) is deliberate: ptflops leaves it uncounted, as in the paper's count.
        logits = torch.einsum("bhid,bhjd->bhij", q, k)  # B x H x N x N
        if self.locality:
            logits = logits * self.log_scale.exp()
            # finfo(dtype).max rather than a fixed large number, which overflows fp16/bf16.
            logits = logits.masked_fill(diagonal_mask(N, x.device), -torch.finfo(logits.dtype).max)
        else:
            logits = logits * self.scale
        if self.prop_attn and size is not None:
            logits = logits + size.log()[:, None, None, :, 0]  # per sample, over key columns
        attn = F.softmax(logits, dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", self.attn_drop(attn), v)  # B x H x N x dh
        out = out.transpose(1, 2).reshape(B, N, self.heads * self.dim_head)
        return self.proj(out), k.mean(dim=1), attn
