"""DTSM: discriminative token selection by attention rollout (TransFG's part selection, Eqs. 17-20)."""

from __future__ import annotations

import torch


def rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """A_L ... A_2 A_1: the per-head product of same-size attention maps, later layers on the left.

    maps: L tensors B x H x N x N -> B x H x N x N, in fp32 (a product of row-stochastic matrices can
    underflow in half precision). No identity is added and heads are not averaged (TransFG)."""
    joint = maps[0].float()
    for attn in maps[1:]:
        joint = torch.matmul(attn.float(), joint)  # torch.matmul: counted by ptflops, as in the paper
    return joint


def select_tokens(maps: list[torch.Tensor]) -> torch.Tensor:
    """Per head, the token the CLS query attends to most through the rollout: B x H indices in 1..N-1.

    Duplicates across heads are kept (TransFG)."""
    with torch.no_grad():  # an index choice: nothing to differentiate
        cls_row = rollout(maps)[:, :, 0, 1:]  # B x H x (N - 1), the CLS column itself excluded
        return cls_row.argmax(dim=-1) + 1


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """[CLS, x[idx]]: x: B x N x C, idx: B x K -> B x (1 + K) x C, one batched gather."""
    picked = x.gather(dim=1, index=idx[..., None].expand(-1, -1, x.shape[-1]))
    return torch.cat([x[:, :1], picked], dim=1)
