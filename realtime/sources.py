"""Frame sources: a camera, a video file or a folder of images, behind one interface.

Every source is read by its own capture thread into a bounded ring buffer, so decoding overlaps with
processing. A live source (a camera, or a file played with `realtime=True`) never waits for the
consumer: when the buffer is full the oldest frame is dropped and counted. A file played as fast
as possible instead blocks the reader, so that no frame is lost.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from epir_core.errors import EPIRError
from epir_core.frame_files import frames_in_order

CAMERA_FALLBACK_FPS = 30.0


class SourceError(EPIRError):
    """The source cannot be opened, or reading it failed (exit code 3)."""


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based index in the source; gaps mean dropped frames
    time_s: float  # source time: index / fps for files, capture time for a camera
    image: np.ndarray  # H x W x 3 uint8 BGR
    arrival: float  # time.perf_counter() when the frame was captured, for latency


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera | video | frames | arrays
    target: str  # camera index, video path, frames folder, or a description of the arrays
    fps: float | None = None  # override (required for frames; a camera's own report may be wrong)
    realtime: bool = False  # play a file at its own rate, dropping frames when behind
    buffer_frames: int = 8  # ring-buffer length; 8 frames absorb a ~0.25 s stall at 30 fps
    # Longest wait for the next frame before the source counts as lost (a camera read can block
    # forever); a --realtime file adds its frame interval.
    read_timeout_s: float = 5.0

    def describe(self) -> str:
        return f"{self.kind}:{self.target}"


Reader = Callable[[], np.ndarray | None]  # returns the next BGR frame, or None at the end


class FrameSource:
    """Iterate over `Frame`s; `fps`, `dropped`, `frames_read` and `length` (frames expected, None when
    unknown: a camera or an iterable) describe the stream."""

    def __init__(self, spec: SourceSpec, reader: Reader, fps: float, live: bool, close: Callable[[], None],
                 length: int | None = None):
        self.spec, self.fps, self.live, self.length = spec, fps, live, length
        self.dropped = 0
        self.frames_read = 0
        self._reader, self._close = reader, close
        self._buffer: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._done = False
        self._stop = False
        self._error: str | None = None
        # Started by the first iteration, so frames do not pile up (and drop) while the caller is
        # still loading its models.
        self._thread = threading.Thread(target=self._capture, name="epir-capture", daemon=True)

    def _capture(self) -> None:
        start = time.perf_counter()
        index = 0
        size = None  # (height, width) of the first frame: every later one must match it
        try:
            while not self._stop:
                if self.live and self.spec.kind != "camera":
                    # --realtime file: wait for the frame's own time, as a camera would deliver it
                    delay = start + index / self.fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                image = self._reader()
                if image is None:
                    break
                size = size or image.shape[:2]
                if image.shape[:2] != size:
                    raise SourceError(
                        f"frame {index} of {self.spec.describe()} is {image.shape[1]}x{image.shape[0]}, "
                        f"earlier frames are {size[1]}x{size[0]}: a source must keep one frame size")
                now = time.perf_counter()
                t = now - start if self.spec.kind == "camera" else index / self.fps
                self._push(Frame(index, t, image, now))
                index += 1
        except SourceError as e:
            self._error = str(e)
        except cv2.error as e:
            self._error = f"reading {self.spec.describe()} failed: {str(e).strip().splitlines()[-1]}"
        finally:
            self._close()  # by the reading thread, so the capture is never released under a read
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _push(self, frame: Frame) -> None:
        with self._cond:
            if self.live:
                if len(self._buffer) >= self.spec.buffer_frames:
                    self._buffer.popleft()
                    self.dropped += 1
            else:
                self._cond.wait_for(lambda: len(self._buffer) < self.spec.buffer_frames or self._stop)
            self._buffer.append(frame)
            self.frames_read += 1
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        self._thread.start()
        timeout = self.spec.read_timeout_s + (1 / self.fps if self.live else 0.0)
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._buffer or self._done, timeout=timeout):
                    what = "camera lost" if self.spec.kind == "camera" else "source stalled"
                    raise SourceError(f"{what}: {self.spec.describe()} delivered no frame for {timeout:g} s")
                if not self._buffer:
                    break
                frame = self._buffer.popleft()
                self._cond.notify_all()
            yield frame
        if self._error:
            raise SourceError(self._error)
        if self.frames_read == 0:
            raise SourceError(f"no frame could be read from {self.spec.describe()}")
        if self.spec.kind == "camera" and not self._stop:
            raise SourceError(f"camera {self.spec.target} stopped delivering frames")

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.ident is None:
            self._close()  # never started: nothing else will release it
        else:
            # A read blocked on a dead camera may outlast the wait; the thread releases it on return.
            self._thread.join(timeout=2.0)

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: SourceSpec) -> FrameSource:
    """Open a source; raises SourceError with a one-line reason when it cannot be opened."""
    if spec.kind == "frames":
        return _open_frames(spec)
    if spec.kind == "camera":
        cap = cv2.VideoCapture(int(spec.target))
    elif spec.kind == "video":
        if not Path(spec.target).is_file():
            raise SourceError(f"video not found: {spec.target}")
        cap = cv2.VideoCapture(str(spec.target))
    else:
        raise ValueError(f"unknown source kind {spec.kind!r}")
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {spec.describe()}")
    reported = cap.get(cv2.CAP_PROP_FPS)
    fps = spec.fps or (reported if reported and 1 <= reported <= 1000 else None)
    if fps is None:
        if spec.kind == "video":
            cap.release()
            raise SourceError(f"{spec.target} does not state its frame rate; pass --fps")
        fps = CAMERA_FALLBACK_FPS

    def read() -> np.ndarray | None:
        ok, image = cap.read()
        return image if ok else None

    live = spec.kind == "camera" or spec.realtime
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if spec.kind == "video" else 0
    return FrameSource(spec, read, fps, live, cap.release, length=count if count > 0 else None)


def _open_frames(spec: SourceSpec) -> FrameSource:
    folder = Path(spec.target)
    if not folder.is_dir():
        raise SourceError(f"frames folder not found: {folder}")
    if not spec.fps:
        raise SourceError("a frames folder needs its frame rate: pass --fps")
    paths = frames_in_order(folder)
    files = iter(paths)

    def read() -> np.ndarray | None:
        path = next(files, None)
        if path is None:
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image {path}")
        return image

    return FrameSource(spec, read, float(spec.fps), spec.realtime, lambda: None, length=len(paths))


def array_source(frames: Iterable[np.ndarray], fps: float) -> FrameSource:
    """Frames already in memory or made by a generator: H x W x 3 uint8 BGR images, read in order."""
    if not fps or fps <= 0:
        raise SourceError("an iterable of frames needs its frame rate: pass fps")
    spec = SourceSpec("arrays", type(frames).__name__, fps=fps)
    images = iter(frames)
    index = 0

    def read() -> np.ndarray | None:
        nonlocal index
        image = next(images, None)
        if image is not None and not (isinstance(image, np.ndarray) and image.dtype == np.uint8
                                      and image.ndim == 3 and image.shape[2] == 3):
            raise SourceError(f"frame {index} is not an H x W x 3 uint8 BGR image")
        index += 1
        return image

    length = len(frames) if hasattr(frames, "__len__") else None
    return FrameSource(spec, read, float(fps), False, lambda: None, length=length)


def read_video(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video file, BGR, in memory (benchmarks, reports, tests); [] when unreadable."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    return frames
