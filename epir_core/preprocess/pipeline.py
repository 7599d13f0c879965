"""Onset + apex frames -> the model input, one function for the trainer and the live app.

    make_model_input = flow_to_input(compute_flow(*crop_pair(onset, apex, box, recipe)), recipe)

The pieces are public so that the live spotter and the benchmark can time them separately.
"""

from __future__ import annotations

import cv2
import numpy as np

from epir_core.errors import FlowError
from epir_core.preprocess.face import FaceBox, crop_face
from epir_core.preprocess.flow import compute_flow
from epir_core.preprocess.recipe import InputRecipe
from epir_core.preprocess.strain import optical_strain


def to_grey(frame: np.ndarray) -> np.ndarray:
    """BGR (H x W x 3) or grey (H x W) uint8 -> H x W uint8."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def crop_pair(onset_bgr: np.ndarray, apex_bgr: np.ndarray, recipe: InputRecipe,
              box: FaceBox) -> tuple[np.ndarray, np.ndarray]:
    """Both frames cropped with the same box (so head-still motion is the face's own) and made grey:
    two crop_height x crop_width uint8 images."""
    crop = (recipe.crop_height, recipe.crop_width)
    return (crop_face(to_grey(onset_bgr), box, *crop, margin=recipe.face_margin),
            crop_face(to_grey(apex_bgr), box, *crop, margin=recipe.face_margin))


def _minmax(channel: np.ndarray) -> np.ndarray:
    """Stretch to [0, 1]; a constant channel (no motion at all) has no range and becomes 0."""
    low, high = channel.min(), channel.max()
    return (channel - low) / (high - low) if high > low else np.zeros_like(channel)


def flow_to_input(flow: np.ndarray, recipe: InputRecipe) -> np.ndarray:
    """H x W x 2 flow -> 3 x size x size float32 in [0, 1], channels (u, v, strain|magnitude).

    The third channel is computed on the full-resolution flow (derivatives of a resized flow would
    depend on the resize), then each map is resized and min-max stretched, and finally quantised
    as the composite's 8-bit PNGs were.
    """
    if not np.isfinite(flow).all():
        raise FlowError("optical flow has non-finite values")
    if recipe.third_channel == "strain":
        third = optical_strain(flow)
    else:
        third = np.linalg.norm(flow, axis=-1)
    maps = np.dstack([flow[..., 0], flow[..., 1], third]).astype(np.float32)  # H x W x 3
    small = cv2.resize(maps, (recipe.size, recipe.size), interpolation=cv2.INTER_AREA)  # size x size x 3
    x = np.stack([_minmax(small[..., c]) for c in range(3)])  # 3 x size x size
    if recipe.quantise_bits:
        levels = 2**recipe.quantise_bits - 1
        x = np.round(x * levels) / levels
    return x.astype(np.float32)


def make_model_input(onset_bgr: np.ndarray, apex_bgr: np.ndarray, recipe: InputRecipe,
                     box: FaceBox) -> np.ndarray:
    """The model input of one onset/apex pair: 3 x size x size float32 in [0, 1].

    Raises FlowError when the flow is not finite; face errors come from FaceLocator, before this.
    """
    onset, apex = crop_pair(onset_bgr, apex_bgr, recipe, box)
    return flow_to_input(compute_flow(onset, apex, recipe.flow_params), recipe)
