"""Training-time augmentation that respects what the input is: a flow field (u, v) and a strain map.

The composite's maps (and flow_to_input's) are each min-max stretched per image and channel, so a
map stores only the shape of its channel: x = (m - min m) / (max m - min m). That decides how each
transform is done here:

- Horizontal flip: u -> 1 - u, every map mirrored (epir_core.model.mirror.hflip, which says why).
  This is exact up to the first differences turning from forward to backward, a sub-pixel shift at
  full resolution.
- Rotation by phi: the maps rotate, and the (u, v) vectors rotate with them. The stretch dropped
  each channel's offset, which a re-stretch after mixing drops again, but also its scale, and the
  rotated u = c u - s v needs the ratio of the u and v ranges. That ratio is lost; we take it as 1
  (rotate the stretched vectors). For the small angles used (default draw up to +-10 degrees,
  sin 10 deg = 0.17) the mixing term is small, so the error in the vectors' new direction is a
  fraction of phi. Strain is the Frobenius norm of the strain tensor, invariant under rotation: the
  map is only rotated. The border is replicated (the face's edge motion continues outward).
- A magnitude third channel (InputRecipe.third_channel) behaves as strain under both.
- Every transformed or mixed channel is stretched to [0, 1] again, as every real input is.
- Mixup mixes two stretched inputs (not raw flows: their scales are lost) with lambda >= 0.5, so
  each row keeps its own label as the dominant one (the contrastive loss uses it); the soft target
  mixes the two labels' targets with the same lambda.

Random choices are drawn per fold from a numpy generator seeded by the fold's seed, for the fold's
real rows only, so a fold augments identically alone or inside any group (train.engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from epir_core.model.mirror import hflip


def restretch(x: torch.Tensor) -> torch.Tensor:
    """Min-max stretch of every map (... x H x W) to [0, 1]; a constant map becomes 0, as in
    epir_core.preprocess.pipeline."""
    low = x.amin(dim=(-2, -1), keepdim=True)
    span = x.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (x - low) / span.clamp(min=1e-12), torch.zeros_like(x))


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W stretched (u, v, strain), B angles (counterclockwise as displayed) -> the rotated
    field, vectors turned with the maps and every map stretched again (see the module notes)."""
    phi = torch.deg2rad(degrees.to(x.dtype))
    c, s = torch.cos(phi), torch.sin(phi)
    # Content turns by R = [[c, s], [-s, c]] in (x right, y down) coordinates, cv2.getRotationMatrix2D's
    # convention; grid_sample wants the inverse map, output -> input, which is R transposed.
    zeros = torch.zeros_like(c)
    inverse = torch.stack([torch.stack([c, -s, zeros], -1), torch.stack([s, c, zeros], -1)], -2)  # B x 2 x 3
    grid = F.affine_grid(inverse, list(x.shape), align_corners=False)
    maps = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    u, v, strain = maps[:, 0], maps[:, 1], maps[:, 2]
    c, s = c[:, None, None], s[:, None, None]
    return restretch(torch.stack([c * u + s * v, -s * u + c * v, strain], dim=1))


@dataclass(frozen=True)
class Draws:
    """One step's random choices for G folds, padded to G x P (padding rows: no-ops)."""

    flip: torch.Tensor  # G x P bool
    degrees: torch.Tensor  # G x P float
    partner: torch.Tensor  # G x P int64: position, in the same fold's batch, of the row mixed in
    lam: torch.Tensor  # G x P float in [0.5, 1]: weight of the row itself


class Augmenter:
    """Per-fold random augmentation of training batches (TrainConfig.flip / rotate / mixup)."""

    def __init__(self, flip: bool, rotate_degrees: float, mixup_alpha: float, fold_seeds: list[int]):
        self.flip = flip
        self.rotate_degrees = rotate_degrees
        self.mixup_alpha = mixup_alpha
        self.rngs = [np.random.default_rng([s, 0xA06]) for s in fold_seeds]  # a stream apart from the shuffle's

    @property
    def active(self) -> bool:
        return self.flip or self.rotate_degrees > 0 or self.mixup_alpha > 0

    def draw(self, chunks: list[np.ndarray], width: int, device: torch.device) -> Draws:
        """Draw for each fold's real rows (chunks[g] has its batch's sample indices)."""
        g = len(chunks)
        flip = np.zeros((g, width), dtype=bool)
        degrees = np.zeros((g, width), dtype=np.float32)
        partner = np.tile(np.arange(width), (g, 1))
        lam = np.ones((g, width), dtype=np.float32)
        for k, (chunk, rng) in enumerate(zip(chunks, self.rngs)):
            n = len(chunk)
            if self.flip:
                flip[k, :n] = rng.random(n) < 0.5
            if self.rotate_degrees > 0:
                degrees[k, :n] = rng.uniform(-self.rotate_degrees, self.rotate_degrees, n)
            if self.mixup_alpha > 0 and n > 1:
                partner[k, :n] = rng.permutation(n)
                drawn = rng.beta(self.mixup_alpha, self.mixup_alpha, n)
                lam[k, :n] = np.maximum(drawn, 1 - drawn)
        as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        return Draws(as_tensor(flip), as_tensor(degrees), as_tensor(partner), as_tensor(lam))

    def apply(self, x: torch.Tensor, targets: torch.Tensor, d: Draws) -> tuple[torch.Tensor, torch.Tensor]:
        """x: G x P x 3 x H x W, targets: G x P x C -> augmented inputs and (mixed) targets."""
        shape = x.shape
        if self.flip:
            x = torch.where(d.flip[..., None, None, None], hflip(x), x)
        if self.rotate_degrees > 0:
            x = rotate(x.reshape(-1, *shape[2:]), d.degrees.reshape(-1)).reshape(shape)
        if self.mixup_alpha > 0:
            lam = d.lam[..., None]
            other = torch.gather(x, 1, d.partner[..., None, None, None].expand(shape))
            x = restretch(lam[..., None, None] * x + (1 - lam[..., None, None]) * other)
            targets = lam * targets + (1 - lam) * torch.gather(targets, 1, d.partner[..., None].expand(targets.shape))
        return x, targets
