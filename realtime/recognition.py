"""Recognition of one spotted event: onset/apex frames -> the checkpoint's input recipe -> the model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from epir_core.errors import FaceTooSmallError, NoFaceError
from epir_core.model.explain import input_cells
from epir_core.preprocess import FaceBox, InputRecipe, make_model_input
from realtime.backends import Backend


@dataclass(frozen=True)
class Recognition:
    label: str
    probs: dict[str, float]
    confidence: float  # probability of the label
    box: FaceBox  # the box both frames were cropped with
    ms: dict[str, float]  # locate, input, inference, explain
    regions: list[dict] = field(default_factory=list)  # input cells the label rests on (input_cells)


class Recognizer:
    """The tight face box comes from the face mesh on the onset frame, as in `train.prepare`, so live
    inputs are cropped the way training inputs were; the tracked box is the fallback when the mesh
    finds no face. `explain` (model input -> patch weights, as EPIR.explain) adds the regions."""

    def __init__(self, backend: Backend, class_names: tuple[str, ...], recipe: InputRecipe, locator,
                 explain: Callable[[np.ndarray], np.ndarray] | None = None):
        self.backend, self.class_names, self.recipe, self.locator = backend, class_names, recipe, locator
        self.explain = explain

    def __call__(self, onset_bgr: np.ndarray, apex_bgr: np.ndarray, tracked_box: FaceBox) -> Recognition:
        t0 = time.perf_counter()
        try:
            box = self.locator.locate(onset_bgr)
        except (NoFaceError, FaceTooSmallError):
            box = tracked_box
        t1 = time.perf_counter()
        x = make_model_input(onset_bgr, apex_bgr, self.recipe, box)  # 3 x 28 x 28 float32
        t2 = time.perf_counter()
        logits = self.backend(x[None]).astype(np.float64)[0]  # C
        t3 = time.perf_counter()
        regions = input_cells(self.explain(x)) if self.explain else []
        t4 = time.perf_counter()
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = int(probs.argmax())
        return Recognition(
            label=self.class_names[best],
            probs={name: round(float(p), 4) for name, p in zip(self.class_names, probs)},
            confidence=round(float(probs[best]), 4),
            box=box,
            ms={"locate": (t1 - t0) * 1e3, "input": (t2 - t1) * 1e3, "inference": (t3 - t2) * 1e3,
                "explain": (t4 - t3) * 1e3},
            regions=regions,
        )
