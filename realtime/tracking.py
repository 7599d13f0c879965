"""Face tracking: mediapipe detection now and then, cheap Lucas-Kanade point tracking in between.

Detection (a few ms) runs when there is no face, when the tracked points are lost, and every
`redetect_s` to correct the slow drift of point tracking. The box handed on is smoothed with a time
constant in seconds, so detector jitter does not move the crop from frame to frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from epir_core.errors import FaceTooSmallError, NoFaceError
from epir_core.preprocess.face import FaceBox


@dataclass(frozen=True)
class TrackerConfig:
    redetect_s: float = 1.0  # periodic re-detection bounds the drift of point tracking
    smooth_s: float = 0.1  # time constant of the box's exponential smoothing
    max_points: int = 40
    min_points: int = 8  # fewer surviving points than this = the face is lost
    min_face_px: int = 48


class FaceTracker:
    """update(gray, frame) -> smoothed FaceBox, or None while no face is found."""

    def __init__(self, config: TrackerConfig, fps: float, locator=None):
        if locator is None:
            from epir_core.preprocess import FaceLocator  # lazy: imports mediapipe

            locator = FaceLocator(min_face_px=config.min_face_px)
        self.config, self.locator = config, locator
        self._redetect_every = max(1, round(config.redetect_s * fps))
        self._alpha = 1.0 - math.exp(-1.0 / max(config.smooth_s * fps, 1e-6))
        self._box: np.ndarray | None = None  # smoothed x, y, w, h (float)
        self._raw: np.ndarray | None = None  # tracked x, y, w, h before smoothing
        self._points: np.ndarray | None = None  # N x 1 x 2 float32, LK points inside the face
        self._prev_gray: np.ndarray | None = None
        self._since_detect = 0
        self.detections = 0
        self.last_ms: dict[str, float] = {}

    def update(self, gray: np.ndarray, frame_bgr: np.ndarray) -> FaceBox | None:
        """gray: H x W uint8 of frame_bgr (H x W x 3)."""
        start = time.perf_counter()
        self.last_ms = {}
        tracked = self._track(gray) if self._raw is not None else False
        self.last_ms["track"] = (time.perf_counter() - start) * 1e3
        if not tracked or self._since_detect >= self._redetect_every:
            self._detect(gray, frame_bgr)
        self._prev_gray = gray
        self._since_detect += 1
        if self._raw is None:
            self._box = None
            return None
        self._box = self._raw.copy() if self._box is None else self._box + self._alpha * (self._raw - self._box)
        x, y, w, h = self._box
        return FaceBox(round(x), round(y), round(w), round(h))

    def _track(self, gray: np.ndarray) -> bool:
        """Move the raw box by the median shift of the LK points; False when too few survive."""
        if self._points is None or len(self._points) < self.config.min_points:
            return False
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            self._prev_gray, gray, self._points, None, winSize=(15, 15), maxLevel=2
        )
        ok = status.ravel() == 1
        if ok.sum() < self.config.min_points:
            return False
        shift = np.median(moved[ok] - self._points[ok], axis=0).ravel()  # dx, dy
        self._raw[:2] += shift
        self._points = moved[ok].reshape(-1, 1, 2)
        return True

    def _detect(self, gray: np.ndarray, frame_bgr: np.ndarray) -> None:
        start = time.perf_counter()
        try:
            box = self.locator.detect(frame_bgr)
        except (NoFaceError, FaceTooSmallError):
            self._raw = self._points = None
            return
        finally:
            self.last_ms["detect"] = (time.perf_counter() - start) * 1e3
            self._since_detect = 0
            self.detections += 1
        self._raw = np.array([box.x, box.y, box.width, box.height], dtype=np.float64)
        mask = np.zeros_like(gray)
        mask[max(0, box.y) : box.y + box.height, max(0, box.x) : box.x + box.width] = 255
        self._points = cv2.goodFeaturesToTrack(
            gray, self.config.max_points, qualityLevel=0.01, minDistance=max(4, box.width // 20), mask=mask
        )
