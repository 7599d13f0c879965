"""Face box from mediapipe's bundled models (0.10.21 ships the .tflite files: nothing is downloaded).

The detector (BlazeFace) gives a coarse box cheaply; the face mesh then refines it to the tight
forehead-to-chin box of the composite's crops. mediapipe is imported lazily: the training GPU
machine has no mediapipe and only reads prepared inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from epir_core.errors import FaceTooSmallError, NoFaceError


@dataclass(frozen=True)
class FaceBox:
    """Pixel box in the frame it was found in; x, y is the top-left corner."""

    x: int
    y: int
    width: int
    height: int

    def scaled(self, aspect: float, margin: float = 0.0) -> "FaceBox":
        """The box grown by `margin` per side, then widened or heightened about its centre to
        width/height == aspect, so that resizing the crop does not distort the face."""
        w = self.width * (1 + 2 * margin)
        h = self.height * (1 + 2 * margin)
        if w / h < aspect:
            w = h * aspect
        else:
            h = w / aspect
        cx, cy = self.x + self.width / 2, self.y + self.height / 2
        return FaceBox(round(cx - w / 2), round(cy - h / 2), round(w), round(h))


class FaceLocator:
    """locate(frame) -> FaceBox, with the cost of each stage of the last call in `last_ms`.

    The live app calls `detect` (a few ms) to track and `locate` (detector + mesh) when it needs the
    tight box; `last_ms` = {"detect": ms, "mesh": ms} lets it see what each call cost.
    """

    def __init__(self, min_face_px: int = 48, min_confidence: float = 0.5):
        import mediapipe as mp  # lazy: heavy, and absent on the training GPU machine

        self.min_face_px = min_face_px
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, min_detection_confidence=min_confidence
        )
        self.last_ms: dict[str, float] = {}

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def __enter__(self) -> "FaceLocator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, frame_bgr: np.ndarray) -> FaceBox:
        """The detector's box of the most confident face (no mesh)."""
        start = time.perf_counter()
        # The short-range detector misses faces that fill the whole frame (tight crops such as the
        # CASME II cropped release), so it looks at the frame inside a border of a quarter side.
        pad = max(frame_bgr.shape[:2]) // 4
        padded = np.pad(frame_bgr[..., ::-1], ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        result = self._detector.process(np.ascontiguousarray(padded))
        self.last_ms = {"detect": (time.perf_counter() - start) * 1e3}
        if not result.detections:
            raise NoFaceError("no face found in the frame")
        best = max(result.detections, key=lambda d: d.score[0])
        rel = best.location_data.relative_bounding_box
        ph, pw = padded.shape[:2]
        box = FaceBox(
            round(rel.xmin * pw) - pad, round(rel.ymin * ph) - pad, round(rel.width * pw), round(rel.height * ph)
        )
        self._check_size(box)
        return box

    def locate(self, frame_bgr: np.ndarray) -> FaceBox:
        """Tight forehead-to-chin box: detector box, then the face mesh's landmark extent inside it."""
        coarse = self.detect(frame_bgr)
        detect_ms = self.last_ms["detect"]
        start = time.perf_counter()
        # The mesh runs on the detector's box with room around it, so it sees one large face.
        region = coarse.scaled(aspect=1.0, margin=0.35)
        crop, (ox, oy) = _crop_with_border(frame_bgr, region)
        result = self._mesh.process(np.ascontiguousarray(crop[..., ::-1]))
        self.last_ms = {"detect": detect_ms, "mesh": (time.perf_counter() - start) * 1e3}
        if not result.multi_face_landmarks:
            raise NoFaceError("the face mesh found no face inside the detector's box")
        points = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark])  # 468 x 2, relative
        xs = points[:, 0] * crop.shape[1] + ox
        ys = points[:, 1] * crop.shape[0] + oy
        box = FaceBox(round(xs.min()), round(ys.min()), round(xs.max() - xs.min()), round(ys.max() - ys.min()))
        self._check_size(box)
        return box

    def _check_size(self, box: FaceBox) -> None:
        if min(box.width, box.height) < self.min_face_px:
            raise FaceTooSmallError(
                f"face is {box.width}x{box.height} px, below the {self.min_face_px} px minimum"
            )


def _crop_with_border(frame: np.ndarray, box: FaceBox) -> tuple[np.ndarray, tuple[int, int]]:
    """frame[box] with edge-replicated border where the box leaves the frame; returns the crop and
    the frame coordinates of its top-left pixel."""
    h, w = frame.shape[:2]
    top, left = max(0, -box.y), max(0, -box.x)
    bottom, right = max(0, box.y + box.height - h), max(0, box.x + box.width - w)
    inner = frame[max(0, box.y) : min(h, box.y + box.height), max(0, box.x) : min(w, box.x + box.width)]
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(inner, pad, mode="edge"), (box.x, box.y)


def crop_face(frame: np.ndarray, box: FaceBox, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """The face box (grown to the crop's aspect) resized to height x width; same dtype/channels."""
    import cv2

    region = box.scaled(aspect=width / height, margin=margin)
    crop, _ = _crop_with_border(frame, region)
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
