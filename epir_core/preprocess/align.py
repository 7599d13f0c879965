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

The databases also registered each clip's frames on its first, so their flows hold little of the
head's own motion. A live head drifts and rolls between onset and apex; head_motion measures that
and the apex is cut where the head went.
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


def inside_frame(shape: tuple[int, ...], matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """height x width bool: the pixels of aligned_crop(frame of `shape`, matrix, ...) made from the
    frame alone, not from its replicated border."""
    full = np.full(shape[:2], 255, np.uint8)
    return cv2.warpAffine(full, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0) == 255


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2 x 3 affine maps: outer after inner."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def bounding_box(points: np.ndarray, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the points' bounding box grown by `margin`, inside an image of `shape`."""
    low = np.maximum(np.floor(points.min(axis=0)).astype(int) - margin, 0)
    high = np.minimum(np.ceil(points.max(axis=0)).astype(int) + margin, shape[::-1])
    return low[0], low[1], high[0], high[1]


def face_corners(grey: np.ndarray, landmarks: np.ndarray, count: int, spacing: float) -> np.ndarray | None:
    """Up to `count` corners (N x 1 x 2 float32) inside the landmarks' hull, `spacing` px apart: the
    points where the head's rigid motion is measured. None when the face has none."""
    mask = np.zeros_like(grey)
    cv2.fillConvexPoly(mask, cv2.convexHull(landmarks.astype(np.int32)), 255)
    return cv2.goodFeaturesToTrack(grey, count, qualityLevel=0.01, minDistance=spacing, mask=mask)


def rigid_motion(a: np.ndarray, b: np.ndarray, points: np.ndarray, box: tuple[int, int, int, int], window: int,
                 levels: int, ransac_px: float | None, min_points: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The similarity (shift, scale, roll) that most of `points` share from grey image a to b.

    Lucas-Kanade follows the points (N x 1 x 2 float32, pixels of a) inside `box` (x0, y0, x1, y1)
    alone: pyramids of the whole frame would cost more than the points. RANSAC at ransac_px keeps
    what moves on its own (an expression) from pulling the fit; with ransac_px None the fit is
    least median of squares, which needs no threshold but half the points or more on the head.
    Returns the 2 x 3 map and the inliers where b has them (N' x 1 x 2), or None when fewer than
    min_points follow it.
    """
    x0, y0, x1, y1 = box
    origin = np.float32([x0, y0])
    moved, status, _ = cv2.calcOpticalFlowPyrLK(a[y0:y1, x0:x1], b[y0:y1, x0:x1], points - origin, None,
                                                winSize=(window, window), maxLevel=levels)
    moved += origin
    ok = status.ravel() == 1
    if ok.sum() < min_points:
        return None
    if ransac_px is None:
        matrix, inliers = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.LMEDS)
    else:
        matrix, inliers = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC,
                                                      ransacReprojThreshold=ransac_px)
    if matrix is None or inliers.sum() < min_points:
        return None
    return matrix, moved[ok][inliers.ravel() == 1].reshape(-1, 1, 2)


HEAD_POINTS = 100  # corners followed from onset to apex
MIN_HEAD_POINTS = 12  # fewer inliers than this: no registration


def head_motion(onset_grey: np.ndarray, apex_grey: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """2 x 3 similarity (shift, scale, roll) carrying the head from the onset frame to the apex frame,
    or None when too few points follow it.

    Corners of the onset's face are followed into the apex (rigid_motion) and fitted by least median
    of squares. A roll of half a degree moves the crop's edges by more than a micro-expression moves
    the face, so without this the flow shows the head, not the expression (README, input recipe).
    RANSAC at 1 px, as the live tracker follows the head, took the points an expression moves by
    less than that as the head's: on a face 180 px wide, a frown's brows made a still head shrink
    by 0.3 %, which at the crop's edge is as large as the frown's own flow.
    """
    width = float(np.ptp(landmarks[:, 0]))
    # Only the face and a quarter of its width round it (room for the head to move) is searched,
    # so the cost does not grow with the camera's resolution.
    box = x0, y0, x1, y1 = bounding_box(landmarks, onset_grey.shape, margin=round(width / 4))
    origin = np.float32([x0, y0])
    points = face_corners(onset_grey[y0:y1, x0:x1], landmarks - origin, HEAD_POINTS, spacing=max(3.0, width / 40))
    if points is None or len(points) < MIN_HEAD_POINTS:
        return None
    found = rigid_motion(onset_grey, apex_grey, points + origin, box, window=21, levels=3, ransac_px=None,
                         min_points=MIN_HEAD_POINTS)
    return None if found is None else found[0]
