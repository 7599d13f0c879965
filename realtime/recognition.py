"""Recognition of one spotted event: onset/apex frames -> the checkpoint's input recipe -> the model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from epir_core.errors import FaceTooSmallError, NoFaceError
from epir_core.calibration import calibrated_probabilities
from epir_core.model.explain import input_cells
from epir_core.preprocess import Face, FaceBox, InputRecipe, crop_matrix, make_model_input
from epir_core.preprocess.regions import region_centres, region_of
from epir_core.runtime import Backend


@dataclass(frozen=True)
class Recognition:
    label: str
    probs: dict[str, float]
    confidence: float  # probability of the label
    box: FaceBox  # the onset face's box (the crop is aligned on its landmarks)
    ms: dict[str, float]  # locate, input, inference, explain
    regions: list[dict] = field(default_factory=list)  # input cells the label rests on, named (input_cells)
    to_frame: tuple = ()  # input_to_frame of the onset face, as nested tuples (JSON-ready)


def input_to_frame(recipe: InputRecipe, face: Face) -> np.ndarray:
    """2 x 3 affine map from a point of the model input, in fractions of its side, to frame pixels:
    the inverse of how crop_pair cuts `face` out of the frame. It puts an event's regions (boxes in
    fractions of the input) back on the face."""
    to_crop = crop_matrix(face, recipe)
    return cv2.invertAffineTransform(to_crop) @ np.diag([recipe.crop_width, recipe.crop_height, 1.0])


@dataclass(frozen=True)
class PreparedInput:
    """An event's model input before the model: the onset face it was cut from and what it cost."""

    face: Face
    x: np.ndarray  # 3 x 28 x 28 float32
    ms: dict[str, float]  # locate, input


class Recognizer:
    """The face mesh runs afresh on the onset frame, as in `train.prepare`, so live inputs are cut the
    way training inputs were; the tracked landmarks are the fallback when it finds no face.
    `explain` (model input -> patch weights, as EPIR.explain) adds the regions the label rests on,
    each named by the face region nearest its centre in the aligned input."""

    def __init__(self, backend: Backend, class_names: tuple[str, ...], recipe: InputRecipe, locator,
                 explain: Callable[[np.ndarray], np.ndarray] | None = None, temperature: float = 1.0):
        self.backend, self.class_names, self.recipe, self.locator = backend, class_names, recipe, locator
        self.temperature = temperature  # the checkpoint's calibration: probabilities are softmax(logits / T)
        self.explain = explain
        self._centres = region_centres()  # where each face region sits in an aligned input

    def __call__(self, onset_bgr: np.ndarray, apex_bgr: np.ndarray, tracked: Face) -> Recognition:
        return self.classify(self.prepare(onset_bgr, apex_bgr, tracked))

    def prepare(self, onset_bgr: np.ndarray, apex_bgr: np.ndarray, tracked: Face) -> PreparedInput:
        """The slow part (face mesh, the recipe's flow); classify() runs the model on it."""
        t0 = time.perf_counter()
        try:
            face = self.locator.locate(onset_bgr)
        except (NoFaceError, FaceTooSmallError):
            face = tracked
        t1 = time.perf_counter()
        x = make_model_input(onset_bgr, apex_bgr, self.recipe, face)  # 3 x 28 x 28 float32
        return PreparedInput(face, x, {"locate": (t1 - t0) * 1e3, "input": (time.perf_counter() - t1) * 1e3})

    def classify(self, prepared: PreparedInput) -> Recognition:
        t2 = time.perf_counter()
        x, face = prepared.x, prepared.face
        logits = self.backend(x[None]).astype(np.float64)[0]  # C
        t3 = time.perf_counter()
        regions = input_cells(self.explain(x)) if self.explain else []
        if self.recipe.align == "similarity":  # only an aligned input puts the face where the template has it
            for cell in regions:
                x0, y0, x1, y1 = cell["box"]
                cell["name"] = region_of((x0 + x1) / 2, (y0 + y1) / 2, self._centres)
        t4 = time.perf_counter()
        probs = calibrated_probabilities(logits, self.temperature)
        best = int(probs.argmax())
        return Recognition(
            label=self.class_names[best],
            probs={name: round(float(p), 4) for name, p in zip(self.class_names, probs)},
            confidence=round(float(probs[best]), 4),
            box=face.box,
            ms={**prepared.ms, "inference": (t3 - t2) * 1e3, "explain": (t4 - t3) * 1e3},
            regions=regions,
            to_frame=tuple(tuple(round(float(v), 3) for v in row) for row in input_to_frame(self.recipe, face)),
        )
