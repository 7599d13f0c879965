"""Onset + apex frames -> the model input, one function for the trainer and the live app.

    make_model_input = flow_to_input(compute_flow(*crop_pair(onset, apex, box, recipe)), recipe)

The pieces are public so that the live spotter and the benchmark can time them separately.
"""

from __future__ import annotations

import cv2
import numpy as np

from epir_core.errors import FlowError
from epir_core.preprocess.align import aligned_crop, alignment_matrix, compose, head_motion, inside_frame
from epir_core.preprocess.face import Face, crop_face
from epir_core.preprocess.flow import compute_flow
from epir_core.preprocess.recipe import InputRecipe
from epir_core.preprocess.strain import optical_strain


def to_grey(frame: np.ndarray) -> np.ndarray:
    """BGR (H x W x 3) or grey (H x W) uint8 -> H x W uint8."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def crop_matrix(face: Face, recipe: InputRecipe) -> np.ndarray:
    """2 x 3 map from frame pixels to the recipe's crop_height x crop_width crop of this face: where
    a point of the frame lands in the crop (and, scaled by size / crop side, in the model input)."""
    if recipe.align == "similarity":
        if face.landmarks is None:
            raise FlowError("the recipe aligns faces by their landmarks, and this face has none")
        return alignment_matrix(face.landmarks, np.array(recipe.template), recipe.crop_height, recipe.crop_width)
    region = face.box.scaled(aspect=recipe.crop_width / recipe.crop_height, margin=recipe.face_margin)
    sx, sy = recipe.crop_width / region.width, recipe.crop_height / region.height  # as crop_face resizes
    return np.array([[sx, 0.0, -sx * region.x], [0.0, sy, -sy * region.y]])


def crop_pair(onset_bgr: np.ndarray, apex_bgr: np.ndarray, recipe: InputRecipe,
              face: Face) -> tuple[np.ndarray, np.ndarray]:
    """Both frames cut the same way from the onset's face, so that the motion between them is the
    face's own (with recipe.register "head", the apex where the head moved to), and made grey: two
    crop_height x crop_width uint8 images."""
    size = (recipe.crop_height, recipe.crop_width)
    if recipe.align == "similarity":
        matrix = crop_matrix(face, recipe)
        onset, apex = to_grey(onset_bgr), to_grey(apex_bgr)
        motion = head_motion(onset, apex, face.landmarks) if recipe.register == "head" else None
        apex_matrix = matrix if motion is None else compose(matrix, cv2.invertAffineTransform(motion))
        onset_crop, apex_crop = aligned_crop(onset, matrix, *size), aligned_crop(apex, apex_matrix, *size)
        # Where a crop reaches past its frame (a face at the frame's edge, or moving out of it), it
        # holds the frame's replicated border, which would read as motion: such pixels take the other
        # crop's, so the flow there is none.
        onset_crop = np.where(inside_frame(onset.shape, matrix, *size), onset_crop, apex_crop)
        apex_crop = np.where(inside_frame(apex.shape, apex_matrix, *size), apex_crop, onset_crop)
        return onset_crop, apex_crop
    return tuple(crop_face(to_grey(frame), face.box, *size, margin=recipe.face_margin)
                 for frame in (onset_bgr, apex_bgr))


def _minmax(channel: np.ndarray) -> np.ndarray:
    """Stretch to [0, 1]; a constant channel (no motion at all) has no range and becomes 0."""
    low, high = channel.min(), channel.max()
    return (channel - low) / (high - low) if high > low else np.zeros_like(channel)


def flow_to_input(flow: np.ndarray, recipe: InputRecipe) -> np.ndarray:
    """H x W x 2 flow -> 3 x size x size float32 in [0, 1], channels (u, v, strain|magnitude).

    The maps are resized, the third channel is computed on the crop's flow or on the resized one
    (recipe.strain_grid), each map is min-max stretched, and finally quantised as the composite's
    8-bit PNGs were.
    """
    if not np.isfinite(flow).all():
        raise FlowError("optical flow has non-finite values")
    interpolation = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}[recipe.resize]

    def resize(maps: np.ndarray) -> np.ndarray:
        return cv2.resize(maps, (recipe.size, recipe.size), interpolation=interpolation)

    if recipe.third_channel == "magnitude":
        small = resize(np.dstack([flow, np.linalg.norm(flow, axis=-1)]).astype(np.float32))  # size x size x 3
    elif recipe.strain_grid == "input":
        uv = resize(flow.astype(np.float32))  # size x size x 2
        small = np.dstack([uv, optical_strain(uv, differences="central")])
    else:
        small = resize(np.dstack([flow, optical_strain(flow)]).astype(np.float32))
    x = np.stack([_minmax(small[..., c]) for c in range(3)])  # 3 x size x size
    if recipe.quantise_bits:
        levels = 2**recipe.quantise_bits - 1
        x = np.round(x * levels) / levels
    return x.astype(np.float32)


def make_model_input(onset_bgr: np.ndarray, apex_bgr: np.ndarray, recipe: InputRecipe,
                     face: Face) -> np.ndarray:
    """The model input of one onset/apex pair: 3 x size x size float32 in [0, 1].

    Raises FlowError when the flow is not finite; face errors come from FaceLocator, before this.
    """
    onset, apex = crop_pair(onset_bgr, apex_bgr, recipe, face)
    return flow_to_input(compute_flow(onset, apex, recipe.flow_params), recipe)
