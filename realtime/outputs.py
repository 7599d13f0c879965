"""Run outputs: events.jsonl, frames.csv, metadata.json, timeline.png and optionally annotated.mp4 in
one folder; and the event tables (CSV, JSONL) that the Python API writes.

Every line is flushed as it is written, so a crash or a lost camera keeps everything up to that
frame; metadata.json is written at the start and rewritten with the run's totals at the end, when
timeline.png is drawn from frames.csv.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from epir_core.model.explain import region_name
from realtime.pipeline import Event, FrameResult
from realtime.timeline import draw_timeline, read_frames_csv

FRAME_COLUMNS = ("frame", "time_s", "face", "x", "y", "width", "height", "motion", "threshold")


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
        self.events: list[Event] = []
        self.frames_written = 0
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
                )
            )
            self._frames_file.flush()
            self.frames_written += 1
        if self.annotate and annotated is not None:
            if self._video is None:
                h, w = annotated.shape[:2]
                fps = float(self.metadata.get("fps") or 30.0)
                self._video = cv2.VideoWriter(str(self.folder / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self._video.write(annotated)

    def event(self, event: Event) -> None:
        self.events.append(event)
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
        if self._frames is not None and self.frames_written:
            try:
                rows = read_frames_csv(self.folder / "frames.csv")
                title = str(self.metadata.get("source", {}).get("target", ""))
                draw_timeline(rows, self.events, self.folder / "timeline.png", title=title)
            except (OSError, ValueError, cv2.error) as e:  # the other outputs are complete: say so, do not fail
                sys.stderr.write(f"warning: timeline.png not written: {e}\n")
        self._events = self._frames_file = self._frames = self._video = None


def write_events_jsonl(events: Iterable[Event], path: Path) -> Path:
    """One JSON object per event and line, as in a run's events.jsonl."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event.to_dict()) + "\n")
    return path


EVENT_COLUMNS = ("onset_frame", "apex_frame", "offset_frame", "onset_s", "apex_s", "offset_s", "label",
                 "confidence", "accepted", "motion_score", "threshold", "x", "y", "width", "height")


def event_header(class_names: Sequence[str]) -> list[str]:
    return [*EVENT_COLUMNS, *(f"p_{name}" for name in class_names), "regions"]


def event_row(event: Event, class_names: Sequence[str]) -> list:
    """One CSV row per event: the flat fields, one probability column per class, and the regions as
    "name=weight" (a cell without a name is r<row>c<col>), heaviest first."""
    d = event.to_dict()
    regions = " ".join(f"{region_name(c)}={c['weight']:.3f}" for c in event.regions)
    return [*(d[k] for k in EVENT_COLUMNS[:11]), *event.box, *(event.probs.get(n, "") for n in class_names), regions]


def write_events_csv(events: Sequence[Event], path: Path, class_names: Sequence[str] | None = None) -> Path:
    """One row per event (see event_row); the class columns follow class_names, else the first event."""
    names = list(class_names) if class_names is not None else list(events[0].probs) if events else []
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(event_header(names))
        writer.writerows(event_row(e, names) for e in events)
    return path
