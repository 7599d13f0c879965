"""Face alignment: a similarity transform (shift, scale, roll) that puts a face's landmarks where
the composite's crops have them.

The composite's flows were computed on the databases' own tight face crops. A crop cut around a
landmark box frames the face differently (more forehead, a smaller face placed lower), and a flow
of a differently framed face is a different input. Fitting the face-mesh landmarks of the onset
frame to the landmarks of the composite's own faces (the template, in fractions of the crop) and
warping both frames with that one transform reproduces the framing, rotation included.

The template is measured, not chosen: `python -m train.calibrate_alignment` writes
composite_template.json from the composite's faces (see that module for how). It holds the
landmarks that the databases' own registration kept still (those that vary least across the
composite's faces: around the eyes), so the fit reproduces that registration.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

TEMPLATE_PATH = Path(__file__).resolve().parent / "composite_template.json"


def load_template() -> tuple[tuple[int, float, float], ...]:
    """The composite's template: (landmark index, x, y) per point, x and y as fractions of the crop."""
    data = json.loads(TEMPLATE_PATH.read_text())
    return tuple((int(i), round(x, 4), round(y, 4)) for i, (x, y) in zip(data["points"], data["template"]))


def alignment_matrix(landmarks: np.ndarray, template: np.ndarray, height: int, width: int) -> np.ndarray:
    """2 x 3 similarity map from frame pixels to a height x width crop.

    landmarks: 468 x 2 face-mesh points in the frame; template: N x 3 rows of (landmark index, x, y)
    with x, y as fractions of the crop. LMedS keeps one badly placed landmark from pulling the fit.
    """
    template = np.asarray(template, dtype=np.float64)
    src = landmarks[template[:, 0].astype(int)].astype(np.float64)
    dst = template[:, 1:] * (width, height)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("no similarity transform fits these landmarks")
    return matrix


def aligned_crop(frame: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """frame warped by `matrix` into height x width; area-like smoothing when it shrinks the face."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 1.0:
        # Shrinking by warpAffine alone aliases; blur first by the shrink factor, as INTER_AREA would.
        sigma = 0.5 * (1.0 / scale - 1.0)
        frame = cv2.GaussianBlur(frame, (0, 0), sigma) if sigma > 0.25 else frame
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def whole_pixel_shift(onset_crop: np.ndarray, apex_crop: np.ndarray) -> tuple[int, int]:
    """How far the face's content moved from the onset crop to the apex crop, rounded to whole pixels
    (dx, dy): phase correlation of the two, which the local motion of an expression hardly moves.

    Cutting the apex that much further on removes the head's drift without resampling, and a
    constant shift of the flow changes nothing after the per-channel min-max stretch.
    """
    window = cv2.createHanningWindow(onset_crop.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(onset_crop.astype(np.float32), apex_crop.astype(np.float32), window)
    return round(dx), round(dy)
