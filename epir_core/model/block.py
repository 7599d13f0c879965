"""The pre-norm transformer block, with optional token merging between attention and MLP."""

from __future__ import annotations

import torch
from torch import nn

from epir_core.config import EPIRConfig
from epir_core.model.attention import Attention
from epir_core.model.merge import bipartite_soft_matching, merge_wavg


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch with probability p while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Mlp(nn.Sequential):
    def __init__(self, config: EPIRConfig) -> None:
        super().__init__(
            nn.Linear(config.dim, config.mlp_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.mlp_dim, config.dim),
            nn.Dropout(config.dropout),
        )


class Block(nn.Module):
    """x <- x + Attn(LN(x)); [merge r tokens]; x <- x + MLP(LN(x)).

    `locality` selects ITALS over plain MSA; r > 0 makes it a token-integration (TI) block."""

    def __init__(self, config: EPIRConfig, locality: bool, r: int = 0) -> None:
        super().__init__()
        self.r = r
        self.dense_merge = config.merge_impl == "dense"
        self.size_weighted = config.merge_mode == "size_weighted"
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = Attention(config, locality)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = Mlp(config)
        self.drop_path = DropPath(config.drop_path)

    def forward(
        self, x: torch.Tensor, size: torch.Tensor | None = None, source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """x: B x N x D, size: B x N x 1 token sizes (required when r > 0), source: B x N x N0 or None
        -> x: B x (N - r) x D, size: B x (N - r) x 1, attention: B x H x N x N, source: B x (N - r) x N0.

        source[b, t, p] = 1 when token t stands for input token p (ToMe's source tracking, for
        EPIR.explain); None skips it, so the forward pass does no extra work."""
        y, keys, attn = self.attn(self.norm1(x), size)
        x = x + self.drop_path(y)
        if self.r:
            merge = bipartite_soft_matching(keys, self.r, dense=self.dense_merge)
            if self.size_weighted:
                x, size = merge_wavg(merge, x, size)
            else:  # Eq. 8 literally: every token weighs the same; size is still tracked for prop_attn
                x, _ = merge_wavg(merge, x, torch.ones_like(size))
                size = merge(size)
            if source is not None:
                source = merge(source)  # a sum of disjoint 0/1 rows: their union
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, size, attn, source
