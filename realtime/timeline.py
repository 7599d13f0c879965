"""The timeline of a run as one PNG: every motion signal over time, the spotting threshold, and the
events (onset to offset shaded, apex marked, label and confidence), so a user sees at a glance what
the spotter saw. Drawn with OpenCV.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from epir_core.model.explain import region_name
from realtime.pipeline import Event

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, AXIS, GRID, RED = (255, 255, 255), (60, 60, 60), (225, 225, 225), (40, 40, 220)
EVENT, EVENT_DIM = (0, 140, 255), (170, 170, 170)  # accepted / below min_confidence
# BGR colours for the motion columns, in the order they appear
PALETTE = ((180, 90, 20), (60, 160, 40), (150, 60, 160), (30, 150, 200), (120, 120, 0), (90, 90, 200))
LEFT, RIGHT, TOP, BOTTOM = 80, 24, 64, 48  # margins around the plot, px


def read_frames_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def as_columns(frames: Sequence[Mapping[str, str]] | Mapping[str, Iterable[float]]) -> dict[str, np.ndarray]:
    """frames.csv rows (dicts of strings, an empty cell unknown) or a mapping of column -> values
    -> column -> float array, NaN where unknown."""
    if isinstance(frames, Mapping):
        return {k: np.asarray(list(v), dtype=np.float64) for k, v in frames.items()}
    names = frames[0].keys() if frames else ()
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else math.nan for r in frames]) for k in names}


def draw_timeline(frames, events: Sequence[Event], path: Path, title: str = "", width: int = 1600,
                  height: int = 440) -> Path:
    """Write the timeline PNG of `frames` (see as_columns: `time_s`, columns named motion*, and
    `threshold` if present) and `events`. Raises ValueError without time_s or a motion column."""
    cols = as_columns(frames)
    motions = [k for k in cols if k.startswith("motion")]
    if "time_s" not in cols or not motions:
        raise ValueError("a timeline needs a time_s column and at least one motion* column")
    t = cols["time_s"]
    lines = [(k, cols[k], PALETTE[i % len(PALETTE)]) for i, k in enumerate(motions)]
    if "threshold" in cols:
        lines.append(("threshold", cols["threshold"], RED))
    values = np.concatenate([v for _, v, _ in lines])
    top = _nice_top(float(np.nanmax(np.where(np.isfinite(values), values, np.nan), initial=0.0)))
    t_end = max(float(np.nanmax(t, initial=0.0)), max((e.offset_s for e in events), default=0.0), 1e-3)

    image = np.full((height, width, 3), 255, np.uint8)
    plot = _Plot(LEFT, TOP, width - LEFT - RIGHT, height - TOP - BOTTOM, t_end, top)
    plot.axes(image)
    for event in events:
        plot.event_span(image, event)
    for _, v, colour in lines:
        plot.series(image, t, v, colour)
    for row, event in enumerate(events):
        plot.event_label(image, event, row)
    _legend(image, lines)
    _text(image, title, (width - RIGHT, 27), align="right")
    path = Path(path)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
    return path


class _Plot:
    """Data (seconds, face widths) to pixels inside the plot rectangle."""

    def __init__(self, x: int, y: int, w: int, h: int, t_end: float, top: float):
        self.x, self.y, self.w, self.h, self.t_end, self.top = x, y, w, h, t_end, top

    def px(self, t: float, v: float) -> tuple[int, int]:
        return (self.x + round(t / self.t_end * (self.w - 1)), self.y + self.h - 1 - round(min(v, self.top) / self.top * (self.h - 1)))

    def axes(self, image: np.ndarray) -> None:
        for v in np.linspace(0, self.top, 5):
            _, yy = self.px(0, v)
            cv2.line(image, (self.x, yy), (self.x + self.w, yy), GRID, 1)
            _text(image, f"{v:.3g}", (self.x - 8, yy + 4), align="right")
        step = _nice_step(self.t_end / 10)
        for s in np.arange(0, self.t_end + 1e-9, step):
            xx, _ = self.px(s, 0)
            cv2.line(image, (xx, self.y + self.h), (xx, self.y + self.h + 5), AXIS, 1)
            _text(image, f"{s:g}", (xx, self.y + self.h + 20), align="center")
        cv2.rectangle(image, (self.x, self.y), (self.x + self.w, self.y + self.h), AXIS, 1)
        _text(image, "time (s)", (self.x + self.w // 2, self.y + self.h + 40), align="center")
        _text(image, "motion (face widths)", (8, self.y - 10))

    def series(self, image: np.ndarray, t: np.ndarray, v: np.ndarray, colour) -> None:
        """One polyline per stretch of finite values: no face, warm-up or a gap breaks the line."""
        ok = np.isfinite(v) & np.isfinite(t)
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8))) + 1
        for run in np.split(np.arange(len(v)), breaks):
            if len(run) and ok[run[0]]:
                pts = np.array([self.px(t[i], v[i]) for i in run], np.int32)
                cv2.polylines(image, [pts], False, colour, 2 if len(run) < self.w else 1, cv2.LINE_AA)

    def event_span(self, image: np.ndarray, event: Event) -> None:
        (x0, _), (x1, _), (xa, _) = self.px(event.onset_s, 0), self.px(event.offset_s, 0), self.px(event.apex_s, 0)
        colour = EVENT if event.accepted else EVENT_DIM
        band = image[self.y + 1 : self.y + self.h, x0 : max(x1, x0 + 2)]
        band[:] = (0.75 * band + 0.25 * np.array(colour)).astype(np.uint8)
        cv2.line(image, (xa, self.y), (xa, self.y + self.h), colour, 1)

    def event_label(self, image: np.ndarray, event: Event, row: int) -> None:
        xa, _ = self.px(event.apex_s, 0)
        # Three staggered rows, so labels of events close in time do not overwrite each other.
        where = f" ({region_name(event.regions[0])})" if event.regions else ""
        _text(image, f"{event.label} {event.confidence:.2f}{where}", (xa + 4, self.y + 18 + 18 * (row % 3)),
              colour=EVENT if event.accepted else EVENT_DIM, scale=0.5, thickness=2)


def _legend(image: np.ndarray, lines) -> None:
    x = LEFT
    for name, _, colour in lines:
        cv2.line(image, (x, 22), (x + 24, 22), colour, 3)
        x = _text(image, name, (x + 30, 27)) + 24
    cv2.rectangle(image, (x, 14), (x + 24, 30), EVENT, -1)
    _text(image, "event (onset-offset, apex line)", (x + 30, 27))


def _text(image, text: str, org, align: str = "left", colour=AXIS, scale: float = 0.45, thickness: int = 1) -> int:
    """putText aligned on org's x; returns the x where the text ends."""
    (w, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    x = org[0] - (w if align == "right" else w // 2 if align == "center" else 0)
    cv2.putText(image, text, (x, org[1]), FONT, scale, colour, thickness, cv2.LINE_AA)
    return x + w


def _nice_step(raw: float) -> float:
    """The 1, 2 or 5 times a power of ten at or above raw."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _nice_top(peak: float) -> float:
    """A round upper bound of the y axis, a little above the highest value."""
    return _nice_step(peak * 1.1 / 4) * 4 if peak > 0 else 1.0
