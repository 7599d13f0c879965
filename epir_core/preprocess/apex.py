"""Apex of a clip without an apex label (SMIC): the frame of maximal optical-flow magnitude from onset."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from epir_core.preprocess.flow import compute_flow
from epir_core.preprocess.recipe import DISParams

# DIS is used to rank frames, not to make inputs: well under 1 ms per frame on a face crop, so a
# 60-frame SMIC clip costs tens of milliseconds instead of 60 TV-L1 runs (~0.3 s each).
APEX_SEARCH_FLOW = DISParams("medium")


def max_flow_apex(crops_grey: Sequence[np.ndarray]) -> int:
    """Index (>= 1) of the crop whose flow from crops_grey[0] has the largest mean magnitude.

    crops_grey: onset first, then the later frames, all H x W uint8 crops with the same box.
    """
    if len(crops_grey) < 2:
        raise ValueError("the apex search needs the onset and at least one later frame")
    onset = crops_grey[0]
    magnitudes = [np.linalg.norm(compute_flow(onset, frame, APEX_SEARCH_FLOW), axis=-1).mean()
                  for frame in crops_grey[1:]]
    return 1 + int(np.argmax(magnitudes))
