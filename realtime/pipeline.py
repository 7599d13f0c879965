"""The live pipeline without any I/O: frame in -> face box, motion signal, finished events out.

The CLI feeds it from a source and writes what comes out; the benchmark drives it directly and reads
the per-stage timings it keeps. Recognition (face mesh, the recipe's optical flow, the model) takes
far longer than a frame, so it runs on a worker thread (OpenCV and the runtimes release the GIL):
the frame loop keeps pace with the camera, and an event comes out of a later process() call.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import cv2

import numpy as np

from epir_core.errors import EPIRError
from epir_core.preprocess import FaceBox
from realtime.recognition import Recognizer
from realtime.sources import Frame
from realtime.spotting import Spot, Spotter, SpotterConfig
from realtime.tracking import FaceTracker, TrackedFace, TrackerConfig

FRAME_STAGES = ("grey", "track", "spot", "total")


@dataclass(frozen=True)
class LiveConfig:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    spotter: SpotterConfig = field(default_factory=SpotterConfig)
    min_confidence: float = 0.0  # events below it are kept but marked not accepted
    # A file read as fast as possible has no clock to keep up with: waiting for each label makes the
    # outputs deterministic and lets the annotated video show it. A live source never waits.
    wait_for_labels: bool = False
    # Events waiting for recognition; each holds three frames. One spotted while this many wait is
    # dropped and counted (LivePipeline.dropped_events), so memory stays flat when recognition lags.
    max_pending: int = 4
    # Start an event's recognition (face mesh, flow, model, explanation) as soon as the spotter has a
    # candidate apex, instead of when it confirms the event; the label is the same, only earlier.
    early_input: bool = True


@dataclass(frozen=True)
class Event:
    onset_frame: int  # 0-based source frame indices
    apex_frame: int
    offset_frame: int
    onset_s: float
    apex_s: float
    offset_s: float
    label: str
    probs: dict[str, float]
    confidence: float
    accepted: bool  # confidence >= LiveConfig.min_confidence
    motion_score: float  # apex score and the threshold it crossed, in robust sigmas of the noise
    threshold: float
    moved: tuple[str, ...]  # face regions the spotter saw move, most first
    box: tuple[int, int, int, int]  # x, y, width, height of the onset's face
    latency_ms: dict[str, float]  # spot (apex capture -> event spotted), locate, input, inference, frame_to_label
    # Model-input cells the label rests on, heaviest first (epir_core.model.explain.input_cells)
    regions: list[dict] = field(default_factory=list)
    # 2 x 3 affine map from the model input (fractions of its side) to frame pixels, for the onset
    # face: where each region's box lies in the frame (realtime.recognition.input_to_frame)
    to_frame: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["latency_ms"] = {k: round(v, 2) for k, v in self.latency_ms.items()}
        d["motion_score"], d["threshold"] = round(self.motion_score, 2), round(self.threshold, 2)
        d["moved"] = list(self.moved)
        return d


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    box: FaceBox | None
    motion: float  # the spotter's score k frames back: max over regions of z (nan without history)
    threshold: float  # the score's threshold (nan without a face, inf during warm-up)
    region_motion: np.ndarray  # per region, residual motion vs frame i-k, face widths (nan without)
    events: list[Event]
    ms: dict[str, float]  # per FRAME_STAGES


class StageTimer:
    """Running per-stage timing totals (ms) over every processed frame."""

    def __init__(self):
        self.frames = 0
        self.total_ms = dict.fromkeys(FRAME_STAGES, 0.0)

    def add(self, ms: dict[str, float]) -> None:
        self.frames += 1
        for k, v in ms.items():
            self.total_ms[k] += v

    def mean_ms(self) -> dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.total_ms.items()}


class LivePipeline:
    """process(frame) for every frame in order, then finish(). An event comes out once it is
    recognised: k frames (gap_s) after its end plus the recognition time.

    The tracker gets a FaceLocator of its own, apart from the recognizer's: a mediapipe graph is
    not safe to call from two threads, and recognition runs on the worker thread."""

    def __init__(self, config: LiveConfig, fps: float, recognizer: Recognizer):
        self.config, self.fps, self.recognizer = config, fps, recognizer
        self.tracker = FaceTracker(config.tracker, fps)
        self.spotter = Spotter(config.spotter, fps)
        self._frames: deque[tuple[Frame, TrackedFace | None]] = deque(maxlen=self.spotter.history_frames)
        self.timer = StageTimer()
        self.events: list[Event] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epir-recognise")
        self._pending: deque[Future] = deque()
        self._early: tuple[tuple[int, int], Future] | None = None  # ((onset, apex), recognition job) of the candidate
        self.failures: list[str] = []
        self.dropped_events = 0

    def process(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        t1 = time.perf_counter()
        tracked = self.tracker.update(grey, frame.image)
        t2 = time.perf_counter()
        spot = None
        if tracked is None:
            self.spotter.reset()
        else:
            spot = self.spotter.update(frame.index, grey, tracked)
        self._frames.append((frame, tracked))
        self._start_early_input()
        if spot is not None:
            self._submit(spot)
        t3 = time.perf_counter()
        events = self._collect(wait=self.config.wait_for_labels)
        ms = {"grey": t1 - t0, "track": t2 - t1, "spot": t3 - t2, "total": time.perf_counter() - t0}
        ms = {k: v * 1e3 for k, v in ms.items()}
        self.timer.add(ms)
        box = tracked.face.box if tracked is not None else None
        return FrameResult(frame, box, self.spotter.score, self.spotter.threshold, self.spotter.region_motion, events, ms)

    def finish(self) -> list[Event]:
        """The events the source's end cut off (Spotter.finish) and those still being recognised (waits
        for them); then stop the worker and release the tracker's locator."""
        try:
            for spot in self.spotter.finish():
                self._submit(spot)
            return self._collect(wait=True)
        finally:
            self._worker.shutdown()
            self.tracker.locator.close()

    def _submit(self, spot: Spot) -> None:
        """Recognise a spotted event on the worker (reusing its early job when it was the candidate), or
        count it dropped when the queue is full."""
        if len(self._pending) >= self.config.max_pending:
            self.dropped_events += 1
            return
        frames = {f.index: (f, t) for f, t in self._frames}
        pair = tuple(frames[i][0] for i in (spot.onset, spot.apex, spot.offset))
        onset_face = frames[spot.onset][1]
        early = self._early[1] if self._early and self._early[0] == (spot.onset, spot.apex) else None
        self._early = None
        self._pending.append(self._worker.submit(self._recognise, spot, pair, onset_face, time.perf_counter(), early))

    def _collect(self, wait: bool) -> list[Event]:
        """Finished recognitions, in spotting order; an event that could not be recognised (say, a
        non-finite flow) is counted in `failures` and dropped, the stream goes on."""
        events = []
        while self._pending and (wait or self._pending[0].done()):
            try:
                events.append(self._pending.popleft().result())
            except EPIRError as e:
                self.failures.append(str(e))
            except Exception as e:  # noqa: BLE001 - a runtime or OpenCV failure loses one event, not the run
                self.failures.append(f"{type(e).__name__}: {e}")
        self.events += events
        return events

    def _start_early_input(self) -> None:
        """A new candidate (onset, apex) from the spotter: recognise it on the worker now. An earlier
        candidate's job that has not started yet is cancelled: the apex moved."""
        candidate = getattr(self.spotter, "candidate", None)
        if not self.config.early_input or candidate is None or (self._early and self._early[0] == candidate):
            return
        if self._early is not None:
            self._early[1].cancel()
        frames = {f.index: (f, t) for f, t in self._frames}
        (onset, tracked), (apex, _) = frames[candidate[0]], frames[candidate[1]]
        self._early = candidate, self._worker.submit(self.recognizer, onset.image, apex.image, tracked.face)

    def _recognise(self, spot: Spot, frames: tuple[Frame, Frame, Frame], tracked: TrackedFace,
                   spotted: float, early: Future | None) -> Event:
        onset, apex, offset = frames
        # The worker runs jobs in order, so the early job of this event has finished (or was cancelled).
        if early is not None and not early.cancelled():
            result = early.result()
        else:
            result = self.recognizer(onset.image, apex.image, tracked.face)
        done = time.perf_counter()
        latency = {"spot": (spotted - apex.arrival) * 1e3, **result.ms, "frame_to_label": (done - apex.arrival) * 1e3}
        return Event(
            onset_frame=spot.onset,
            apex_frame=spot.apex,
            offset_frame=spot.offset,
            onset_s=round(onset.time_s, 4),
            apex_s=round(apex.time_s, 4),
            offset_s=round(offset.time_s, 4),
            label=result.label,
            probs=result.probs,
            confidence=result.confidence,
            accepted=result.confidence >= self.config.min_confidence,
            motion_score=spot.score,
            threshold=spot.threshold,
            moved=spot.regions,
            box=(result.box.x, result.box.y, result.box.width, result.box.height),
            latency_ms=latency,
            regions=result.regions,
            to_frame=result.to_frame,
        )
