"""Run outputs: events.jsonl, frames.csv, metadata.json, timeline.png and optionally annotated.mp4 in
one folder; and the event tables (CSV, JSONL) that the Python API writes.

Every line is flushed as it is written, so a crash or a lost camera keeps everything up to that
frame; metadata.json is written at the start and rewritten with the run's totals at the end, after
the other files are closed and timeline.png is drawn from frames.csv. A folder already holding these
files is reused: the files are named on stderr as overwritten, and one that is a symlink (or
anything but a plain file) is refused, so a run never writes through a link planted in the folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from epir_core.errors import EPIRError
from epir_core.files import write_text_atomic
from epir_core.preprocess.regions import REGION_NAMES
from epir_core.model.explain import region_name
from realtime.pipeline import Event, FrameResult
from realtime.timeline import draw_timeline, read_frames_csv

FILES = ("metadata.json", "events.jsonl", "frames.csv", "annotated.mp4", "timeline.png")
# score/threshold: the spotter's max z over regions and its bar (robust sigmas); motion_<region>: the
# region's own motion against frame i-k, in face widths, so users can plot what the spotter saw.
FRAME_COLUMNS = ("frame", "time_s", "face", "x", "y", "width", "height", "score", "threshold",
                 *(f"motion_{name.replace(' ', '_')}" for name in REGION_NAMES))


def finite(value: float, digits: int = 5) -> float | str:
    """CSV has no NaN or infinity: an unknown value is an empty cell."""
    return round(value, digits) if math.isfinite(value) else ""


class OutputError(EPIRError):
    """An output cannot be written: a refused --output file, a video writer that does not open, a
    closed stdout (exit code 6)."""


def existing_outputs(folder: Path) -> list[str]:
    """The run files already in `folder` (they will be overwritten); raises OutputError when one is
    a symlink or not a plain file."""
    found = []
    for name in FILES:
        path = folder / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise OutputError(f"--output: {path} is a symlink or not a plain file; refusing to write through it")
        if path.exists():
            found.append(name)
    return found


def open_new(path: Path, **kwargs):
    """Open for writing, truncating; O_NOFOLLOW: a symlink planted after the check is refused too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    return open(fd, "w", encoding="utf-8", **kwargs)


class RunOutputs:
    """Write what a run produces; `json_stream` also prints each event as one JSON line on stdout."""

    def __init__(self, folder: Path | None, metadata: dict, json_stream: bool = False, annotate: bool = False):
        self.folder, self.metadata, self.json_stream = folder, metadata, json_stream
        self.annotate = annotate and folder is not None
        self._video: cv2.VideoWriter | None = None
        self._events = self._frames_file = self._frames = None
        self.overwritten: list[str] = []  # run files that were already in the folder
        self.events: list[Event] = []
        self.frames_written = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.overwritten = existing_outputs(folder)
            self.write_metadata()
            self._events = open_new(folder / "events.jsonl")
            self._frames_file = open_new(folder / "frames.csv", newline="")
            self._frames = csv.writer(self._frames_file)
            self._frames.writerow(FRAME_COLUMNS)
            self._frames_file.flush()

    def write_metadata(self, **final) -> None:
        self.metadata.update(final)
        if self.folder is not None:
            write_text_atomic(self.folder / "metadata.json", json.dumps(self.metadata, indent=2) + "\n")

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
            self.frames_written += 1
        if self.annotate and annotated is not None:
            if self._video is None:
                self._video = self._open_video(*annotated.shape[:2])
            self._video.write(annotated)

    def _open_video(self, height: int, width: int) -> cv2.VideoWriter:
        path = self.folder / "annotated.mp4"
        existing_outputs(self.folder)  # the folder may have changed since the start
        video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(self.metadata.get("fps") or 30.0),
                                (width, height))
        if not video.isOpened():
            raise OutputError(f"--annotate: OpenCV cannot write {path} (no mp4v encoder, or the folder is not writable)")
        return video

    def event(self, event: Event) -> None:
        self.events.append(event)
        line = json.dumps(event.to_dict())
        if self._events is not None:
            self._events.write(line + "\n")
            self._events.flush()
        if self.json_stream:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                # Nothing reads stdout any more: point it at /dev/null, so that the interpreter's own
                # flush at exit does not fail again (and exit 120) after the run has said why it stopped.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise OutputError("--json: stdout was closed by the reader") from None

    def close(self) -> None:
        """Close the event, frame and video files and draw timeline.png (the caller then writes the
        summary)."""
        try:
            for f in (self._events, self._frames_file):
                if f is not None:
                    f.close()
        finally:
            if self._video is not None:
                self._video.release()
            drawn = self._frames is not None and self.frames_written
            self._events = self._frames_file = self._frames = self._video = None
        if drawn:
            try:
                rows = read_frames_csv(self.folder / "frames.csv")
                title = str(self.metadata.get("source", {}).get("target", ""))
                draw_timeline(rows, self.events, self.folder / "timeline.png", title=title)
            except (OSError, ValueError, cv2.error) as e:  # the other outputs are complete: say so, do not fail
                sys.stderr.write(f"warning: timeline.png not written: {e}\n")


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
