"""Latency of each stage of the live pipeline on the 640x480 frames of a synthetic video, then the
whole pipeline end to end.

Every stage is timed on its own with the same harness; a stage whose code or dependencies are not
on this machine (mediapipe, opencv-contrib's TV-L1, OpenCV CUDA) is reported as skipped with the
reason, and a stage that fails (e.g. no face found in the clip) as failed with the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import cv2
import numpy as np

from benchmarks import live_bench
from benchmarks.config import BenchConfig
from benchmarks.live_bench import StageSkipped, TestClip
from benchmarks.timing import Stats, time_callable, time_samples
from realtime.sources import read_video
from epir_core.runtime import first_line


@dataclass(frozen=True)
class Stage:
    name: str
    variant: str
    device: str
    measure: Callable[[], Stats]  # raises StageSkipped; any other exception marks the stage failed


def bench_pipeline(cfg: BenchConfig, data_root: Path | None, workdir: Path, progress: Callable[[str], None]) -> dict:
    progress("writing the synthetic clip")
    try:
        clip = live_bench.make_test_clip(cfg, data_root, workdir)
        frames = read_video(clip.path)  # each 480 x 640 x 3 uint8 BGR
        if not frames:
            raise OSError(f"OpenCV wrote {clip.path.name} but cannot read it back")
    except Exception as e:  # without a clip no stage can run; the model results are still kept
        return {"status": "failed", "reason": first_line(e), "frame_size": None, "clip": None, "stages": [],
                "end_to_end": live_bench.skipped_end_to_end("failed", "no test clip")}
    locator = _SharedLocator()
    analyzer = _SharedAnalyzer(cfg, workdir)
    rows = [_stage_row(stage, progress) for stage in _stages(cfg, clip, frames, locator, analyzer)]
    progress("end to end")
    try:
        e2e = live_bench.end_to_end(cfg, clip, analyzer.get(), locator.get())
    except StageSkipped as e:
        e2e = live_bench.skipped_end_to_end("skipped", str(e))
    except Exception as e:  # the stage rows above are still worth reporting
        e2e = live_bench.skipped_end_to_end("failed", first_line(e))
    clip_info = {"frames": clip.frames, "fps": clip.fps, "apex_frame": clip.apex, "face": clip.face_source}
    return {"status": "ok", "reason": None, "frame_size": [frames[0].shape[1], frames[0].shape[0]],
            "clip": clip_info, "stages": rows, "end_to_end": e2e}


def _stages(cfg: BenchConfig, clip: TestClip, frames: list[np.ndarray], locator: "_SharedLocator",
            analyzer: "_SharedAnalyzer") -> Iterator[Stage]:
    """The stages in pipeline order; `frames` is the decoded clip, so only `decode` pays for decoding."""
    from realtime.spotting import SpotterConfig
    from realtime.tracking import TrackerConfig

    gap_s, refresh_s = SpotterConfig().gap_s, TrackerConfig().refresh_s  # the live app's defaults
    apex = clip.apex if clip.apex is not None else len(frames) // 2
    onset, apex_frame = frames[max(0, apex - live_bench.EXPRESSION[0])], frames[apex]
    runs = cfg.pipeline_runs
    yield Stage("decode", "mp4v 640x480, cv2.VideoCapture", "cpu", lambda: _decode(clip))
    yield Stage("face_detection", "mediapipe BlazeFace", "cpu",
                lambda: time_callable(lambda: locator.get().detect(apex_frame), cfg.warmup, runs))
    yield Stage("face_box", "BlazeFace + face mesh (landmarks, once per event)", "cpu",
                lambda: time_callable(lambda: locator.get().locate(apex_frame), cfg.warmup, runs))
    yield Stage("tracking", f"LK head similarity, face mesh every {refresh_s:g} s (every frame)", "cpu",
                lambda: _tracking(frames, clip.fps, locator))
    yield Stage("spotting", f"LK on region landmarks vs frame i-k = {gap_s:g} s back (every frame)", "cpu",
                lambda: live_bench.spotting(frames, clip.fps, locator.get()))
    for label, recipe, flow_backend in _event_recipes(cfg.device):
        yield Stage("event_input", label, _backend_device(flow_backend),
                    lambda r=recipe, b=flow_backend: _event_input(r, b, onset, apex_frame, locator, cfg))
    yield Stage("model", "live backend, batch 1, numpy in/out", cfg.device,
                lambda: live_bench.live_model(cfg, analyzer.get()))


def _stage_row(stage: Stage, progress: Callable[[str], None]) -> dict:
    progress(f"stage {stage.name}: {stage.variant} ({stage.device})")
    row = {"stage": stage.name, "variant": stage.variant, "device": stage.device}
    try:
        stats = stage.measure()
    except StageSkipped as e:
        return row | dict.fromkeys(Stats.keys()) | {"status": "skipped", "reason": str(e)}
    except Exception as e:  # e.g. NoFaceError on the clip: a "failed" row, and the other stages still run
        return row | dict.fromkeys(Stats.keys()) | {"status": "failed", "reason": first_line(e)}
    return row | stats.to_dict() | {"status": "ok", "reason": None}


def _decode(clip: TestClip) -> Stats:
    cap = cv2.VideoCapture(str(clip.path))
    samples = []
    try:
        while True:
            t0 = perf_counter()
            ok, _ = cap.read()
            if not ok:
                break
            samples.append((perf_counter() - t0) * 1e3)
    finally:
        cap.release()
    return time_samples(samples)


class _SharedLocator:
    """One FaceLocator for every face stage, made on first use (mediapipe may be missing)."""

    def __init__(self):
        self._locator = None

    def get(self):
        if self._locator is None:
            try:
                from epir_core.preprocess import FaceLocator

                self._locator = FaceLocator()
            except ImportError as e:
                raise StageSkipped(f"not installed: {e.name}") from e
        return self._locator


class _SharedAnalyzer:
    """The live app's Analyzer (model backend and recogniser), built once for the model stage and the
    end-to-end run."""

    def __init__(self, cfg: BenchConfig, workdir: Path):
        self.cfg, self.workdir, self._analyzer = cfg, workdir, None

    def get(self):
        if self._analyzer is None:
            self._analyzer = live_bench.live_analyzer(self.cfg, self.workdir)
        return self._analyzer


def _tracking(frames: list[np.ndarray], fps: float, locator: _SharedLocator) -> Stats:
    from realtime.tracking import FaceTracker, TrackerConfig

    tracker = FaceTracker(TrackerConfig(), fps, locator=locator.get())
    samples = []
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        t0 = perf_counter()
        tracker.update(grey, frame)
        samples.append((perf_counter() - t0) * 1e3)
    # Every frame counts, the periodic re-detections included: that is what tracking costs per frame.
    return time_samples(samples)


def _event_recipes(device: str) -> list[tuple[str, object, str]]:
    """(label, InputRecipe, flow backend): each flow with OpenCV on the CPU, the TV-L1 torch port (on
    torch's device), and OpenCV's CUDA flows when asked for or present."""
    from epir_core.preprocess import InputRecipe, cuda_available

    recipes = [
        ("tvl1 170x140 (composite recipe)", InputRecipe.composite()),
        ("farneback 170x140 (paper recipe)", InputRecipe.paper()),
        ("dis medium 170x140", InputRecipe(flow="dis")),
    ]
    out = [(label, r, "cpu") for label, r in recipes]
    out.append(("tvl1 170x140 (composite recipe), torch port", InputRecipe.composite(), "torch"))
    if device == "cuda" or cuda_available():
        out += [(label, r, "cuda") for label, r in recipes if r.flow != "dis"]  # OpenCV has no CUDA DIS
    return out


def _backend_device(backend: str) -> str:
    from epir_core.preprocess.flow import torch_device

    return torch_device() if backend == "torch" else backend


def _event_input(recipe, backend: str, onset: np.ndarray, apex: np.ndarray, locator: "_SharedLocator",
                 cfg: BenchConfig) -> Stats:
    """The model input of the clip's onset/apex pair (make_model_input's steps, with the flow backend
    chosen), aligned on the onset's face (found once, untimed: the face_box stage times that)."""
    from epir_core.errors import FlowError
    from epir_core.preprocess import compute_flow, crop_pair, cuda_available, flow_to_input

    if backend == "cuda" and not cuda_available():
        raise StageSkipped("this OpenCV build has no CUDA optical flow")
    face = locator.get().locate(onset)

    def make_input():
        return flow_to_input(compute_flow(*crop_pair(onset, apex, recipe, face), recipe.flow_params, backend), recipe)

    try:
        make_input()
    except FlowError as e:  # e.g. TV-L1 without opencv-contrib
        raise StageSkipped(str(e)) from e
    # Full TV-L1 takes hundreds of ms a pair on this CPU: fewer runs keep the default run short.
    runs = max(1, cfg.pipeline_runs // 4) if recipe.flow == "tvl1" else cfg.pipeline_runs
    return time_callable(make_input, min(cfg.warmup, 1), runs)
