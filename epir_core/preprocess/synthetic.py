"""Synthetic onset/apex pairs with a known local motion, made by warping a real face.

Used as evidence that the recipe recovers motion where and in the direction it was put, by the
TV-L1 speed/fidelity study, and by the tests' fake databases.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Warp:
    """A smooth Gaussian bump of displacement: at relative position (cx, cy) of the image, peak
    displacement (dx, dy) pixels, spread sigma (relative to the image width)."""

    cx: float = 0.3
    cy: float = 0.72
    dx: float = 1.5
    dy: float = -1.0
    sigma: float = 0.08

    def field(self, height: int, width: int) -> np.ndarray:
        """H x W x 2 displacement (pixels) of this bump."""
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        s = self.sigma * width
        bump = np.exp(-((xs - self.cx * width) ** 2 + (ys - self.cy * height) ** 2) / (2 * s * s))
        return np.dstack([self.dx * bump, self.dy * bump]).astype(np.float32)


def warp_image(image: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """The image with its content moved by `displacement` (H x W x 2): out(p) = image(p - d(p)),
    which for a smooth small d moves what was at p to p + d."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs - displacement[..., 0], ys - displacement[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)


def synthetic_pair(face: np.ndarray, warp: Warp, rng: np.random.Generator, noise: float = 2.0,
                   jitter: float = 0.2, noise_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(onset, apex) uint8 images like `face`: apex = face warped by `warp` plus a small global
    shift (`jitter` px, head sway, drawn from rng), each frame with independent sensor noise of std
    `noise` grey levels (drawn from noise_rng, default rng: the same rng state with another noise_rng
    gives the same pair seen through fresh sensor noise)."""
    h, w = face.shape[:2]
    field = warp.field(h, w) + rng.uniform(-jitter, jitter, size=2).astype(np.float32)
    apex = warp_image(face, field)

    def noisy(img: np.ndarray) -> np.ndarray:
        return np.clip(img + (noise_rng or rng).normal(0, noise, img.shape), 0, 255).astype(np.uint8)

    return noisy(face.astype(np.float32)), noisy(apex.astype(np.float32))
