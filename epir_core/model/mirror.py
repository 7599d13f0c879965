"""Mirror symmetry of the model input, and a model that averages over it.

An input is (u, v, strain), each map min-max stretched to [0, 1] per image and channel. The flow
of mirrored frames is (-u, v) mirrored, and the stretch of -u is exactly 1 - (stretch of u), so the
input of the mirrored frames is u -> 1 - u with every map mirrored. Strain keeps its value (u_x and
v_y keep their sign, u_y and v_x both change theirs) and is only mirrored.

A face's expression does not change in a mirror, so a model trained with mirrored inputs can
predict from the mean of the logits of an input and its mirror (test-time flip). A checkpoint whose
calibration was fitted on such means must be run the same way: `MirrorAveraged`.
"""

from __future__ import annotations

import torch
from torch import nn


def hflip(x: torch.Tensor) -> torch.Tensor:
    """... x 3 x H x W stretched (u, v, strain) -> the input of the mirrored frames."""
    flipped = x.flip(-1)
    return torch.cat([1 - flipped[..., :1, :, :], flipped[..., 1:, :, :]], dim=-3)


class MirrorAveraged(nn.Module):
    """logits(x) = (model(x) + model(hflip(x))) / 2, as one forward pass over a batch of 2B."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config  # what the runtime reads for input shapes and cache keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x 3 x H x W -> B x C
        direct, mirrored = self.model(torch.cat([x, hflip(x)])).chunk(2)  # B x C each
        return (direct + mirrored) / 2
