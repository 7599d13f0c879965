"""Run outputs: events.jsonl, frames.csv, metadata.json and optionally annotated.mp4 in one folder.

Every line is flushed as it is written, so a crash or a lost camera keeps everything up to that
frame; metadata.json is written at the start and rewritten with the run's totals at the end.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from epir_core.preprocess.regions import REGION_NAMES
from realtime.pipeline import Event, FrameResult

# score/threshold: the spotter's max z over regions and its bar (robust sigmas); motion_<region>: the
# region's own motion against frame i-k, in face widths, so users can plot what the spotter saw.
FRAME_COLUMNS = ("frame", "time_s", "face", "x", "y", "width", "height", "score", "threshold",
                 *(f"motion_{name.replace(' ', '_')}" for name in REGION_NAMES))


def finite(value: float, digits: int = 5) -> float | str:
    """CSV has no NaN or infinity: an unknown value is an empty cell."""
    return round(value, digits) if math.isfinite(value) else ""


class RunOutputs:
    """Write what a run produces; `json_stream` also prints each event as one JSON line on stdout."""

    def __init__(self, folder: Path | None, metadata: dict, json_stream: bool = False, annotate: bool = False):
        self.folder, self.metadata, self.json_stream = folder, metadata, json_stream
        self.annotate = annotate and folder is not None
        self._video: cv2.VideoWriter | None = None
        self._events = self._frames_file = self._frames = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.write_metadata()
            self._events = open(folder / "events.jsonl", "w", encoding="utf-8")
            self._frames_file = open(folder / "frames.csv", "w", encoding="utf-8", newline="")
            self._frames = csv.writer(self._frames_file)
            self._frames.writerow(FRAME_COLUMNS)
            self._frames_file.flush()

    def write_metadata(self, **final) -> None:
        self.metadata.update(final)
        if self.folder is not None:
            tmp = self.folder / "metadata.json.tmp"
            tmp.write_text(json.dumps(self.metadata, indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.folder / "metadata.json")  # never a half-written file

    def frame(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        if self._frames is not None:
            b = result.box
            self._frames.writerow(
                (
                    result.frame.index,
                    round(result.frame.time_s, 4),
                    int(b is not None),
                    *((b.x, b.y, b.width, b.height) if b is not None else ("",) * 4),
                    finite(result.motion),
                    finite(result.threshold),
                    *(finite(float(m), 6) for m in result.region_motion),
                )
            )
            self._frames_file.flush()
        if self.annotate and annotated is not None:
            if self._video is None:
                h, w = annotated.shape[:2]
                fps = float(self.metadata.get("fps") or 30.0)
                self._video = cv2.VideoWriter(str(self.folder / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self._video.write(annotated)

    def event(self, event: Event) -> None:
        line = json.dumps(event.to_dict())
        if self._events is not None:
            self._events.write(line + "\n")
            self._events.flush()
        if self.json_stream:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def close(self, **final) -> None:
        self.write_metadata(**final)
        for f in (self._events, self._frames_file):
            if f is not None:
                f.close()
        if self._video is not None:
            self._video.release()
        self._events = self._frames_file = self._frames = self._video = None
