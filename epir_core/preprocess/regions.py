"""Named face regions that micro-expressions move, as face-mesh landmark indices.

Left and right are the person's own (their right brow is on the image's left). Eyelids are left
out: a blink is not a micro-expression. The spotter measures motion on these landmarks, and an
event names the regions that moved; `region_of` names a point of the aligned model input.
"""

from __future__ import annotations

import json

import numpy as np

from epir_core.preprocess.align import TEMPLATE_PATH

REGIONS: dict[str, tuple[int, ...]] = {
    "right inner brow": (107, 66, 105, 55, 65, 52),
    "right outer brow": (70, 63, 105, 46, 53, 52),
    "left inner brow": (336, 296, 334, 285, 295, 282),
    "left outer brow": (300, 293, 334, 276, 283, 282),
    "between brows": (9, 8, 193, 417, 168),
    "right nose wing": (129, 98, 64, 48, 219),
    "left nose wing": (358, 327, 294, 278, 439),
    "right cheek": (205, 50, 101, 36, 203),
    "left cheek": (425, 280, 330, 266, 423),
    "right mouth corner": (61, 146, 91, 185, 40, 76, 62),
    "left mouth corner": (291, 375, 321, 409, 270, 306, 292),
    "upper lip": (0, 37, 267, 11, 12, 72, 302),
    "chin": (17, 84, 314, 18, 200, 199, 175),
}
REGION_NAMES = tuple(REGIONS)
REGION_POINTS = np.array([i for points in REGIONS.values() for i in points])  # all, region by region
REGION_OF_POINT = np.repeat(np.arange(len(REGIONS)), [len(p) for p in REGIONS.values()])


def region_centres() -> np.ndarray:
    """len(REGIONS) x 2 centres in the aligned crop, as fractions of its width and height."""
    mean_face = np.array(json.loads(TEMPLATE_PATH.read_text())["mean_face"])  # 468 x 2
    return np.array([mean_face[list(points)].mean(axis=0) for points in REGIONS.values()])


def region_of(x: float, y: float, centres: np.ndarray | None = None) -> str:
    """The region whose centre is nearest to (x, y), fractions of the aligned crop."""
    centres = region_centres() if centres is None else centres
    return REGION_NAMES[int(np.argmin(np.linalg.norm(centres - (x, y), axis=1)))]
