"""Causal spotting of micro-expressions in a stream.

Per frame i, s_i is the local facial motion between frame i-k and frame i: optical flow of a small
face crop (both frames cropped with the current box), minus its median, which is the rigid head
motion because a micro-expression moves only a minority of the face; s_i is the mean of the largest
residual magnitudes, in face widths. The apex score of frame j is

    c_j = min(s_j, s_{j+k})      (frame j differs from both j-k and j+k)

which is the published "compare i with i-k and i+k" spotter made causal with a lag of k frames: a
brief expression is high on both sides of its apex, while a lasting change (a posed expression, a
head turn) is high on one side only. A run of c above a rolling threshold (median + z robust sigma
of the recent past, with an absolute floor) that is no longer than a micro-expression gives one
event, its apex at the run's maximum. Onset and offset are then refined with a few extra flows:
the last frame before the apex that still looks like the frame k before it, and symmetrically.

All durations are in seconds and converted with the stream's real frame rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from epir_core.preprocess.face import FaceBox, crop_face
from epir_core.preprocess.flow import farneback
from epir_core.preprocess.recipe import FarnebackParams

PAPER_FARNEBACK = FarnebackParams()  # the EPIR paper's parameters


@dataclass(frozen=True)
class SpotterConfig:
    flow_size: int = 48  # side of the face crop the spotting flow runs on (px); cost grows as its square
    border: float = 0.1  # crop border left out: it holds background, which does not move with the head
    gap_s: float = 0.2  # k: about onset-to-apex of a micro-expression; also the detection lag
    window_s: float = 5.0  # history of the rolling threshold
    warmup_s: float = 1.0  # no event before the threshold has this much history
    z: float = 8.0  # threshold = median + z * robust sigma of recent scores
    min_motion: float = 0.004  # absolute floor of the threshold, in face widths
    max_event_s: float = 0.5  # longer runs are not micro-expressions
    top_fraction: float = 0.05  # s = mean of the largest 5 % residual magnitudes (a local motion)
    bound_fraction: float = 0.8  # onset/offset: last/first frame this close to the neutral side


@dataclass(frozen=True)
class Spot:
    onset: int  # 0-based source frame indices
    apex: int
    offset: int
    score: float  # c at the apex, face widths
    threshold: float


class MotionMeter:
    """Residual (head-motion-compensated) local motion between two small grey face crops.

    Farneback with the EPIR paper's parameters: on 48 px crops of the demo clip it separated a 4 px
    mouth-corner motion from noise and head drift 4.6x (DIS ultrafast/fast/medium: 1.7x/3.1x/0.9x).
    """

    def __init__(self, size: int, border: float, top_fraction: float):
        self.size = size
        self._inner = slice(round(border * size), size - round(border * size))
        inner = self._inner.stop - self._inner.start
        self._top = max(1, round(top_fraction * inner * inner))

    def __call__(self, ref: np.ndarray, cur: np.ndarray) -> float:
        """ref, cur: size x size uint8 -> motion in face widths."""
        flow = farneback(ref, cur, PAPER_FARNEBACK)  # size x size x 2, px
        flow = flow[self._inner, self._inner]
        residual = flow - np.median(flow.reshape(-1, 2), axis=0)  # rigid head motion removed
        mag = np.sqrt((residual**2).sum(axis=2)).ravel()
        top = np.partition(mag, mag.size - self._top)[-self._top :]
        return float(top.mean()) / self.size


class Spotter:
    """update(index, gray, box) after every frame with a face; reset() when the face is lost."""

    def __init__(self, config: SpotterConfig, fps: float):
        self.config = config
        self.k = max(1, round(config.gap_s * fps))
        self.max_run = max(1, round(config.max_event_s * fps))
        self.warmup = max(2 * self.k, round(config.warmup_s * fps))
        self.meter = MotionMeter(config.flow_size, config.border, config.top_fraction)
        # Frames stay as long as an event can need them: its run plus k on each side, plus the lag.
        self.history_frames = self.max_run + 3 * self.k + 2
        self._gray: deque[tuple[int, np.ndarray]] = deque(maxlen=self.history_frames)
        self._scores: deque[float] = deque(maxlen=max(self.warmup, round(config.window_s * fps)))
        self.reset()

    def reset(self) -> None:
        self._gray.clear()
        self._s: deque[float] = deque(maxlen=self.k + 1)  # s_{i-k} .. s_i
        self._run: list[tuple[int, float]] = []  # (frame, c) of the current above-threshold run
        self._run_threshold = 0.0
        self.motion = float("nan")  # s of the latest frame
        self.threshold = float("nan")  # threshold in force for the latest scored frame

    def update(self, index: int, gray: np.ndarray, box: FaceBox) -> Spot | None:
        """gray: the whole frame, H x W uint8. Returns an event when one has just ended."""
        if self._gray and self._gray[-1][0] != index - 1:
            self.reset()  # a gap (dropped frames, lost face): frame i-k is not k frames back
        self._gray.append((index, gray))
        self.motion = float("nan")
        if len(self._gray) <= self.k:
            return None
        ref = self._crop(self._gray[-1 - self.k][1], box)
        self.motion = self.meter(ref, self._crop(gray, box))
        self._s.append(self.motion)
        if len(self._s) <= self.k:
            return None
        return self._score(index - self.k, min(self._s[0], self._s[-1]), box)

    def _score(self, j: int, c: float, box: FaceBox) -> Spot | None:
        """Feed c_j (known k frames late); returns a Spot when an above-threshold run ends."""
        if self._run:
            threshold = self._run_threshold  # frozen: the event must not raise its own bar
        elif len(self._scores) >= self.warmup:
            history = np.fromiter(self._scores, dtype=np.float64)
            median = np.median(history)
            sigma = 1.4826 * np.median(np.abs(history - median))  # robust to past events
            threshold = max(self.config.min_motion, median + self.config.z * sigma)
        else:
            threshold = float("inf")
        self.threshold = threshold
        if c > threshold:
            if not self._run:
                self._run_threshold = threshold
            self._run.append((j, c))
            return None
        self._scores.append(c)
        run, self._run = self._run, []
        if not run or len(run) > self.max_run:
            return None
        apex, peak = max(run, key=lambda jc: jc[1])
        onset, offset = self._bounds(apex, box)
        return Spot(onset, apex, offset, peak, self._run_threshold)

    def _bounds(self, apex: int, box: FaceBox) -> tuple[int, int]:
        """Onset: the last frame in [apex-k, apex) whose motion to the apex is still at least
        bound_fraction of frame apex-k's; offset likewise in (apex, apex+k]. Both frames are still in
        the history: it holds the longest run plus k on each side and the lag."""
        frames = dict(self._gray)
        apex_crop = self._crop(frames[apex], box)

        def motion(j: int) -> float:
            return self.meter(self._crop(frames[j], box), apex_crop)

        def last_neutral(candidates: range, side: int) -> int:
            bar = self.config.bound_fraction * motion(side)
            return next((j for j in candidates if motion(j) >= bar), side)

        onset = last_neutral(range(apex - 1, apex - self.k, -1), apex - self.k)
        offset = last_neutral(range(apex + 1, apex + self.k), apex + self.k)
        return onset, offset

    def _crop(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        return crop_face(gray, box, self.config.flow_size, self.config.flow_size)
