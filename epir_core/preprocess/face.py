"""Faces in a frame: BlazeFace finds them, the 468-point face mesh places landmarks.

Both models are mediapipe's own (Apache 2.0) and ship in epir_core/face_models/ with their SHA-256,
checked before loading: mediapipe releases after 0.10.21 carry no model files and nothing may be
downloaded at run time. BlazeFace runs through mediapipe's Tasks API, which exists on every Python
that mediapipe supports. The face-mesh model runs through OpenCV's TFLite importer: the Tasks
FaceLandmarker only takes the 478-point model of its own bundle, which mediapipe does not ship.

The mesh is run as mediapipe's face-mesh graph runs it: a square region 1.5 times the face, turned
so the eyes are level, resized to 192 px, RGB in [0, 1]; the landmarks are mapped back to the frame.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from epir_core.errors import FaceModelError, FaceTooSmallError, NoFaceError

MODELS_DIR = Path(__file__).resolve().parent.parent / "face_models"
MESH_INPUT = 192  # the face-mesh model's input side, px
MESH_POINTS = 468
ROI_SCALE = 1.5  # the mesh sees 1.5 x the face, as in mediapipe's face-mesh graph
# Landmarks on the outer eye corners (mesh indices): they set the roll of the region of interest.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


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


@dataclass(frozen=True)
class Face:
    """A located face: its landmark box and the face-mesh landmarks (468 x 2, frame pixels)."""

    box: FaceBox
    landmarks: np.ndarray | None = None  # None where only a box is known (old checkpoints, tests)

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> "Face":
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        box = FaceBox(round(low[0]), round(low[1]), round(high[0] - low[0]), round(high[1] - low[1]))
        return cls(box, landmarks.astype(np.float32))


@dataclass(frozen=True)
class Roi:
    """A square region of a frame, turned by `angle` radians (clockwise in image coordinates)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_input(self, side: int) -> np.ndarray:
        """2 x 3 affine map from frame pixels to a side x side image of the region, level eyes."""
        c, s, k = math.cos(self.angle), math.sin(self.angle), side / self.size
        return np.array([[c * k, s * k, side / 2 - k * (c * self.cx + s * self.cy)],
                         [-s * k, c * k, side / 2 - k * (-s * self.cx + c * self.cy)]])

    @classmethod
    def around(cls, landmarks: np.ndarray) -> "Roi":
        """The mesh's next region from its last landmarks (how mediapipe tracks between detections)."""
        (x0, y0), (x1, y1) = landmarks[RIGHT_EYE_OUTER], landmarks[LEFT_EYE_OUTER]
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        cx, cy = (low + high) / 2
        return cls(cx, cy, ROI_SCALE * max(high - low), math.atan2(y1 - y0, x1 - x0))


def model_path(name: str) -> Path:
    """A shipped model file whose SHA-256 matches face_models/MODELS.json; FaceModelError otherwise."""
    manifest = json.loads((MODELS_DIR / "MODELS.json").read_text())
    path = MODELS_DIR / name
    if name not in manifest["files"] or not path.is_file():
        raise FaceModelError(f"face model {path} is missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != manifest["files"][name]["sha256"]:
        raise FaceModelError(f"face model {path} does not match its SHA-256 in MODELS.json")
    return path


@lru_cache(maxsize=1)
def _verified_models() -> tuple[str, str]:
    return str(model_path("face_detection_short_range.tflite")), str(model_path("face_landmark.tflite"))


class FaceLocator:
    """detect(frame) -> (box, roi); landmarks(frame, roi) -> Face; locate(frame) -> Face.

    `last_ms` holds the cost of each stage of the last call ({"detect": ms, "mesh": ms}). One
    locator per thread: neither graph may be called from two threads at once.
    """

    def __init__(self, min_face_px: int = 48, min_confidence: float = 0.5):
        from mediapipe.tasks.python import BaseOptions, vision  # lazy: absent on the training GPU machine

        detector_path, mesh_path = _verified_models()
        self.min_face_px = min_face_px
        self._detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=detector_path), min_detection_confidence=min_confidence))
        self._mesh = cv2.dnn.readNetFromTFLite(mesh_path)
        self.last_ms: dict[str, float] = {}

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "FaceLocator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, frame_bgr: np.ndarray) -> tuple[FaceBox, Roi]:
        """The most confident face's detector box and the mesh region it gives."""
        return self._detect(_rgb(frame_bgr))

    def landmarks(self, frame_bgr: np.ndarray, roi: Roi) -> Face:
        """The face mesh inside `roi`: 468 landmarks in frame pixels."""
        return self._landmarks(_rgb(frame_bgr), roi)

    def locate(self, frame_bgr: np.ndarray) -> Face:
        """Detector, then the face mesh in the region it gives."""
        rgb = _rgb(frame_bgr)
        _, roi = self._detect(rgb)
        return self._landmarks(rgb, roi)

    def _detect(self, rgb: np.ndarray) -> tuple[FaceBox, Roi]:
        import mediapipe as mp

        start = time.perf_counter()
        # The short-range detector misses faces that fill the whole frame (tight crops such as the
        # CASME II cropped release), so it looks at the frame inside a border of a quarter side.
        pad = max(rgb.shape[:2]) // 4
        padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=padded))
        self.last_ms = {"detect": (time.perf_counter() - start) * 1e3}
        if not result.detections:
            raise NoFaceError("no face found in the frame")
        best = max(result.detections, key=lambda d: d.categories[0].score)
        b = best.bounding_box
        box = FaceBox(b.origin_x - pad, b.origin_y - pad, b.width, b.height)
        self._check_size(box)
        ph, pw = padded.shape[:2]
        (x0, y0), (x1, y1) = [(k.x * pw - pad, k.y * ph - pad) for k in best.keypoints[:2]]  # right, left eye
        roi = Roi(box.x + box.width / 2, box.y + box.height / 2, ROI_SCALE * max(box.width, box.height),
                  math.atan2(y1 - y0, x1 - x0))
        return box, roi

    def _landmarks(self, rgb: np.ndarray, roi: Roi) -> Face:
        start = time.perf_counter()
        to_input = roi.to_input(MESH_INPUT)
        crop = cv2.warpAffine(rgb, to_input, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        blob = crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0  # 1 x 3 x 192 x 192, RGB in [0, 1]
        self._mesh.setInput(blob)
        out = next(o for o in self._mesh.forward(self._mesh.getUnconnectedOutLayersNames())
                   if o.size == MESH_POINTS * 3)
        points = out.reshape(MESH_POINTS, 3)[:, :2]  # in the 192 px input
        to_frame = cv2.invertAffineTransform(to_input)
        points = points @ to_frame[:, :2].T + to_frame[:, 2]
        self.last_ms["mesh"] = (time.perf_counter() - start) * 1e3
        face = Face.from_landmarks(points)
        self._check_size(face.box)
        return face

    def _check_size(self, box: FaceBox) -> None:
        if min(box.width, box.height) < self.min_face_px:
            raise FaceTooSmallError(
                f"face is {box.width}x{box.height} px, below the {self.min_face_px} px minimum"
            )


def _rgb(frame: np.ndarray) -> np.ndarray:
    """BGR or grey uint8 -> contiguous RGB, as both models expect."""
    code = cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(frame, code)


def _crop_with_border(frame: np.ndarray, box: FaceBox) -> np.ndarray:
    """frame[box] with edge-replicated border where the box leaves the frame."""
    h, w = frame.shape[:2]
    top, left = max(0, -box.y), max(0, -box.x)
    bottom, right = max(0, box.y + box.height - h), max(0, box.x + box.width - w)
    inner = frame[max(0, box.y) : min(h, box.y + box.height), max(0, box.x) : min(w, box.x + box.width)]
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(inner, pad, mode="edge")


def crop_face(frame: np.ndarray, box: FaceBox, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """The face box (grown to the crop's aspect) resized to height x width; same dtype/channels."""
    region = box.scaled(aspect=width / height, margin=margin)
    return cv2.resize(_crop_with_border(frame, region), (width, height), interpolation=cv2.INTER_AREA)
