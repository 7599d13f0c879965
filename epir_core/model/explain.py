"""Why a label was given: the input patches behind the tokens the final CLS token reads.

DTSM hands the last block CLS plus one token per head, and each of those tokens stands for one or
more input patches (the merges of token integration, followed with ToMe's source tracking). The
last block's attention from CLS says how much the label rests on each token; a token's share is
spread evenly over the patches it stands for.
"""

from __future__ import annotations

import torch


def patch_weights(attn: torch.Tensor, source: torch.Tensor, grid: int) -> torch.Tensor:
    """attn: B x H x N x N, the last block's attention; source: B x N x (1 + grid^2) 0/1, which input
    tokens (CLS first, then patches row-major) each of its N tokens stands for -> B x grid x grid,
    each map summing to 1."""
    from_cls = attn[:, :, 0].float().mean(dim=1)  # B x N: CLS's attention to each token, heads averaged
    patches = source[:, :, 1:]  # B x N x P; CLS stands for no patch, so its own share drops out
    spread = patches / patches.sum(dim=-1, keepdim=True).clamp(min=1)  # each token's share per patch
    weights = torch.einsum("bn,bnp->bp", from_cls, spread)  # B x P
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.reshape(-1, grid, grid)


def input_cells(weights, min_weight: float = 0.0) -> list[dict]:
    """grid x grid patch weights (tensor or array) -> the cells above min_weight, heaviest first:
    {row, col, weight, box: [x0, y0, x1, y1]} with the box in fractions of the model input's side."""
    rows, cols = weights.shape
    cells = [
        {"row": r, "col": c, "weight": round(float(weights[r][c]), 4),
         "box": [c / cols, r / rows, (c + 1) / cols, (r + 1) / rows]}
        for r in range(rows)
        for c in range(cols)
        if float(weights[r][c]) > min_weight
    ]
    return sorted(cells, key=lambda cell: -cell["weight"])


def region_name(cell: dict) -> str:
    """A cell's region name when it has one (the face regions of the aligned template), else r<row>c<col>."""
    return cell.get("name") or f"r{cell['row']}c{cell['col']}"
