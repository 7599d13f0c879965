"""EPIR: DNSPT -> token integration (6 TI blocks) -> discriminative token extractor (6 ITALS blocks,
DTSM, last ITALS block) -> LN -> linear head on CLS."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from epir_core.config import PRESETS, EPIRConfig
from epir_core.model.block import Block
from epir_core.model.dtsm import gather_tokens, select_tokens
from epir_core.model.explain import patch_weights
from epir_core.model.tokenization import PatchTokenizer


class EPIR(nn.Module):
    def __init__(self, config: EPIRConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = PatchTokenizer(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.dim))
        nn.init.trunc_normal_(self.cls_token, std=config.embed_init_std)
        nn.init.trunc_normal_(self.pos_embed, std=config.embed_init_std)
        ti_itals = config.ti_attention == "itals"
        ex_itals = config.extractor_attention == "itals"
        self.ti_blocks = nn.ModuleList(Block(config, ti_itals, r) for r in config.merges())
        self.blocks = nn.ModuleList(Block(config, ex_itals) for _ in range(config.extractor_blocks))
        self.last_block = Block(config, ex_itals)
        self.norm = nn.LayerNorm(config.dim) if config.final_norm else nn.Identity()
        self.head = nn.Linear(config.dim, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x 3 x 28 x 28 in [0, 1] -> the final CLS feature B x 256 (after the final LN)."""
        return self.encode(x)[0]

    def encode(
        self, x: torch.Tensor, track_sources: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> (CLS feature B x 256, the last block's attention B x H x 4 x 4, sources B x 4 x 17 or None).

        With track_sources, sources[b, t, p] = 1 when token t of the last block stands for input token
        p (p = 0 is CLS, 1..16 the patches in row-major order), followed through every merge."""
        tokens = self.tokenizer(x)  # B x 16 x 256
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed  # B x 17 x 256 (Eq. 4)
        # Token sizes: how many patches each token stands for; reset on every call.
        size = torch.ones_like(x[..., :1]) if self.ti_blocks else None
        source = torch.eye(x.shape[1], device=x.device).expand(x.shape[0], -1, -1) if track_sources else None
        for block in self.ti_blocks:
            x, size, _, source = block(x, size, source)  # 17 -> 16 -> ... -> 11 tokens
        maps = []
        for block in self.blocks:
            x, size, attn, _ = block(x, size)  # 11 tokens, attn: B x 3 x 11 x 11
            maps.append(attn)
        if self.config.dtsm and maps:
            idx = select_tokens(maps)  # B x 3, one token per head
            x = gather_tokens(x, idx)  # B x 4 x 256
            size = gather_tokens(size, idx) if size is not None else None
            source = gather_tokens(source, idx) if source is not None else None
        x, _, attn, _ = self.last_block(x, size)
        # Only CLS feeds the head; LayerNorm is per token, so normalising CLS alone is the same.
        return self.norm(x[:, 0]), attn, source

    @torch.no_grad()
    def explain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Why a label was given: x -> (logits B x C, patch weights B x 4 x 4 summing to 1).

        The logits are forward(x)'s. A patch's weight is how much the final CLS draws on the DTSM
        tokens that stand for it (see patch_weights)."""
        feats, attn, source = self.encode(x, track_sources=True)
        grid = self.config.image_size // self.config.patch_size
        return self.head(feats), patch_weights(attn, source, grid)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits B x C, CLS feature B x 256): the feature is what the contrastive loss sees."""
        feats = self.forward_features(x)
        return self.head(feats), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_model(preset: str = "epir", num_classes: int = 3, **overrides) -> EPIR:
    """A fresh fp32 EPIR in train mode from a preset of Table 4, with any config field overridden."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return EPIR(replace(PRESETS[preset], num_classes=num_classes, **overrides))
