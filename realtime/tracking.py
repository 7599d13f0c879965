"""Face tracking: landmarks found now and then, carried between by the head's rigid motion.

BlazeFace and the face mesh (epir_core.preprocess.face) find the face and its 468 landmarks when
there is none. Between, Lucas-Kanade points on the face give the head's frame-to-frame similarity
(shift, scale, roll; RANSAC, so a moving mouth or brow does not pull it), which carries the
landmarks and accumulates into `head`: the map from the track's first frame to this one. The
spotter removes head motion with `head`, which is smooth; the mesh is re-fitted every `refresh_s`
to correct the landmarks' slow drift, without touching `head`. Detection runs again every
`redetect_s` to notice a face that has gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from epir_core.errors import FaceTooSmallError, NoFaceError
from epir_core.preprocess.align import bounding_box, compose, face_corners, rigid_motion
from epir_core.preprocess.face import Face, Roi


@dataclass(frozen=True)
class TrackerConfig:
    refresh_s: float = 1.0  # face mesh re-fitted in the tracked region (about 6 ms)
    redetect_s: float = 2.0  # full detection (about 8 ms) checks that the face is still there
    max_points: int = 60
    min_points: int = 12  # fewer inliers than this = the face is lost
    ransac_px: float = 1.0  # a point further than this from the rigid motion is an outlier
    min_face_px: int = 48


@dataclass(frozen=True)
class TrackedFace:
    face: Face  # landmarks carried to this frame
    head: np.ndarray  # 2 x 3 similarity: track's first frame -> this frame
    track: int  # a new number each time the face is found anew: heads of two tracks do not compose


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """N x 2 points through a 2 x 3 affine map."""
    return points @ matrix[:, :2].T + matrix[:, 2]


class FaceTracker:
    """update(gray, frame) -> TrackedFace, or None while no face is found."""

    def __init__(self, config: TrackerConfig, fps: float, locator=None):
        if locator is None:
            from epir_core.preprocess import FaceLocator  # lazy: imports mediapipe

            locator = FaceLocator(min_face_px=config.min_face_px)
        self.config, self.locator = config, locator
        self._refresh_every = max(1, round(config.refresh_s * fps))
        self._redetect_every = max(1, round(config.redetect_s * fps))
        self._tracked: TrackedFace | None = None
        self._points: np.ndarray | None = None  # N x 1 x 2 float32, LK points on the face
        self._prev_gray: np.ndarray | None = None
        self._frames = 0  # frames since the track began
        self._tracks = 0
        self.detections = 0
        self.last_ms: dict[str, float] = {}

    def update(self, gray: np.ndarray, frame_bgr: np.ndarray) -> TrackedFace | None:
        """gray: H x W uint8 of frame_bgr (H x W x 3)."""
        self.last_ms = {}
        start = time.perf_counter()
        if self._tracked is not None and not self._follow(gray):
            self._tracked = None
        self.last_ms["track"] = (time.perf_counter() - start) * 1e3
        if self._tracked is None or self._frames % self._redetect_every == 0:
            self._find(gray, frame_bgr, keep_track=self._tracked is not None)
        elif self._frames % self._refresh_every == 0:
            self._refit(gray, frame_bgr)
        self._prev_gray = gray
        self._frames += 1
        return self._tracked

    def _follow(self, gray: np.ndarray) -> bool:
        """Carry landmarks and head by the rigid motion of the LK points; False when it is lost."""
        if self._points is None or len(self._points) < self.config.min_points:
            return False
        box = bounding_box(self._points.reshape(-1, 2), gray.shape, margin=64)
        found = rigid_motion(self._prev_gray, gray, self._points, box, window=15, levels=2,
                             ransac_px=self.config.ransac_px, min_points=self.config.min_points)
        if found is None:
            return False
        step, self._points = found
        previous = self._tracked
        landmarks = apply(step, previous.face.landmarks)
        self._tracked = TrackedFace(Face.from_landmarks(landmarks), compose(step, previous.head), previous.track)
        if len(self._points) < self.config.max_points // 2:
            self._points = self._seed_points(gray, self._tracked.face)
        return True

    def _find(self, gray: np.ndarray, frame_bgr: np.ndarray, keep_track: bool) -> None:
        """Detector and mesh. A face still tracked keeps its head and track number."""
        start = time.perf_counter()
        try:
            face = self.locator.locate(frame_bgr)
        except (NoFaceError, FaceTooSmallError):
            self._tracked, self._points = None, None
            return
        finally:
            self.last_ms["detect"] = (time.perf_counter() - start) * 1e3
            self.detections += 1
        if keep_track:
            self._tracked = TrackedFace(face, self._tracked.head, self._tracked.track)
        else:
            self._tracks += 1
            self._frames = 0
            self._tracked = TrackedFace(face, np.eye(2, 3), self._tracks)
            self._points = self._seed_points(gray, face)

    def _refit(self, gray: np.ndarray, frame_bgr: np.ndarray) -> None:
        """The mesh again, in the region the tracked landmarks give (no detector)."""
        start = time.perf_counter()
        try:
            face = self.locator.landmarks(frame_bgr, Roi.around(self._tracked.face.landmarks))
        except FaceTooSmallError:
            return
        finally:
            self.last_ms["mesh"] = (time.perf_counter() - start) * 1e3
        self._tracked = TrackedFace(face, self._tracked.head, self._tracked.track)

    def _seed_points(self, gray: np.ndarray, face: Face) -> np.ndarray | None:
        return face_corners(gray, face.landmarks, self.config.max_points, spacing=max(4, face.box.width // 16))
