"""What the user sees: the frame with the face box, the motion signal as a small plot, the last
events with label, confidence and the face regions the spotter saw move, the latest event's
explanation regions on the face, and fps / per-stage latency. The same drawing feeds annotated.mp4.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque

import cv2
import numpy as np

from epir_core.model.explain import region_name
from realtime.pipeline import Event, FrameResult

GREEN, RED, WHITE, GREY, YELLOW = (80, 220, 80), (60, 60, 230), (255, 255, 255), (150, 150, 150), (0, 220, 255)
MAGENTA = (255, 60, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
WINDOW = "epir-live (q quits)"


def display_available() -> bool:
    """On Linux a window needs an X or Wayland display; elsewhere one is assumed."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Overlay:
    """Keeps the recent signal, events and rates; draw(result) returns an annotated copy of the frame."""

    def __init__(self, fps: float, plot_s: float = 4.0, shown_events: int = 3, regions_s: float = 2.0,
                 named_regions: int = 3):
        self._motion: deque[float] = deque(maxlen=max(2, round(plot_s * fps)))
        self._threshold: deque[float] = deque(maxlen=self._motion.maxlen)
        self._events: deque[Event] = deque(maxlen=shown_events)
        # The latest event's regions stay on the face for regions_s of source time; the heaviest
        # named_regions cells carry their names.
        self.regions_s, self.named_regions = regions_s, named_regions
        self._explained: tuple[Event, float] | None = None  # (event, source time it came out)
        self._last = time.perf_counter()
        self.rate = 0.0  # processed frames per second, smoothed

    def draw(self, result: FrameResult, stage_ms: dict[str, float]) -> np.ndarray:
        now = time.perf_counter()
        dt, self._last = now - self._last, now
        if dt > 0:
            self.rate = 1 / dt if self.rate == 0 else 0.9 * self.rate + 0.1 / dt
        self._motion.append(result.motion)
        self._threshold.append(result.threshold)
        self._events.extend(result.events)
        explained = [e for e in result.events if e.regions and e.to_frame]
        if explained:
            self._explained = (explained[-1], result.frame.time_s)
        image = result.frame.image.copy()
        if self._explained is not None and result.frame.time_s - self._explained[1] <= self.regions_s:
            self._draw_regions(image, self._explained[0])
        if result.box is not None:
            b = result.box
            cv2.rectangle(image, (b.x, b.y), (b.x + b.width, b.y + b.height), GREEN, 2)
        else:
            cv2.putText(image, "no face", (10, 60), FONT, 0.7, RED, 2)
        self._draw_text(image, stage_ms)
        self._draw_plot(image)
        return image

    def _draw_text(self, image: np.ndarray, stage_ms: dict[str, float]) -> None:
        stages = " ".join(f"{k} {v:.1f}" for k, v in stage_ms.items())
        cv2.putText(image, f"{self.rate:5.1f} fps | ms: {stages}", (10, 24), FONT, 0.5, WHITE, 1)
        for row, e in enumerate(reversed(self._events)):
            text = f"{e.label} {e.confidence:.2f} @ {e.apex_s:.2f}s ({e.latency_ms['frame_to_label']:.0f} ms)"
            moved = f" moved: {', '.join(e.moved[:2])}" if e.moved else ""
            cv2.putText(image, text + moved, (10, 50 + 22 * (row + 1)), FONT, 0.5, YELLOW if e.accepted else GREY, 1)

    def _draw_regions(self, image: np.ndarray, event: Event) -> None:
        """The input cells the label rests on, put back on the onset's face by event.to_frame (the
        inverse of the crop): outlined from grey (light) to magenta (the heaviest); the heaviest are
        named, with their weights, under the event list."""
        to_frame = np.array(event.to_frame, dtype=np.float64)
        heaviest = max(cell["weight"] for cell in event.regions)
        for rank, cell in enumerate(event.regions):  # heaviest first
            x0, y0, x1, y1 = cell["box"]
            corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
            polygon = np.round(corners @ to_frame.T).astype(np.int32)
            share = cell["weight"] / heaviest if heaviest > 0 else 0.0
            colour = tuple(round(g + share * (m - g)) for g, m in zip(GREY, MAGENTA))
            cv2.polylines(image, [polygon], True, colour, 2 if rank < self.named_regions else 1)
        named = ", ".join(f"{region_name(c)} {c['weight']:.2f}" for c in event.regions[: self.named_regions])
        row = self._events.maxlen + 1  # the line under the event list
        cv2.putText(image, f"why {event.label}: {named}", (10, 50 + 22 * row), FONT, 0.5, MAGENTA, 1)

    def _draw_plot(self, image: np.ndarray) -> None:
        """Motion (white) and threshold (red) over the last plot_s seconds, bottom-left."""
        h, w = image.shape[:2]
        pw, ph = min(w - 20, 240), 70
        x0, y0 = 10, h - 10 - ph
        image[y0 : y0 + ph, x0 : x0 + pw] //= 3  # dim the background under the plot
        values = [v for v in (*self._motion, *self._threshold) if math.isfinite(v)]
        top = max(values, default=0.0) * 1.2 or 1.0
        for series, colour in ((self._motion, WHITE), (self._threshold, RED)):
            pts = [
                (x0 + round(i * (pw - 1) / (self._motion.maxlen - 1)), y0 + ph - 1 - round(v / top * (ph - 1)))
                for i, v in enumerate(series)
                if math.isfinite(v)
            ]
            if len(pts) > 1:
                cv2.polylines(image, [np.array(pts, dtype=np.int32)], False, colour, 1)


class Window:
    """A cv2 window; show() returns False once the user pressed q (or closed the window)."""

    def __init__(self):
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray) -> bool:
        cv2.imshow(WINDOW, image)
        key = cv2.waitKey(1) & 0xFF
        return key != ord("q") and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)
