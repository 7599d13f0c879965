"""The live app's own pieces, timed: the test clip, the spotting flow, the live model backend, and the
whole pipeline end to end (sustained frames per second, apex arrival -> label latency)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import time

import cv2
import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.timing import Stats, time_callable, time_samples

EXPRESSION = (5, 12)  # frames onset -> apex and onset -> offset, as in the demo clip
_E2E_KEYS = ("frames", "fps_sustained", "process_ms_mean", "dropped_frames", "events_expected",
             "events_spotted", "apex_to_label_ms", "recognise_ms", "latency_split_ms", "backend", "backend_threads")


class StageSkipped(Exception):
    """The stage cannot run here; the message says why."""


@dataclass(frozen=True)
class TestClip:
    path: Path
    fps: float
    frames: int
    apex: int | None  # frame index of the expression's apex
    face_source: str


def composite_faces(data_root: Path) -> list[Path]:
    """The composite's apex faces under a data root, sorted; empty when it holds none."""
    return sorted((data_root / "megc2019_composite" / "apex_face_224").glob("*.jpg"))


def make_test_clip(cfg: BenchConfig, data_root: Path | None, workdir: Path) -> TestClip:
    """The live app's demo clip (640x480, 30 fps, one expression) lasting cfg.video_seconds: the shipped
    portrait, or with a data root the first composite apex face (as the records before the portrait)."""
    from realtime.demo_clip import ASTRONAUT, ClipSpec, Portrait, make_clip

    if data_root is None:
        face, source = ASTRONAUT, f"shipped portrait {ASTRONAUT.path.name}"
    else:
        first = composite_faces(data_root)[0]
        face, source = Portrait(first), f"composite apex face {first.name}"
    from realtime.spotting import SpotterConfig

    fps, spotter = 30.0, SpotterConfig()
    frames = round(cfg.video_seconds * fps)
    # The spotter learns the face's noise first (warm-up, after 2k frames of history), and closes an
    # event k frames after its end plus the bridge.
    onset = max(round((spotter.warmup_s + 2 * spotter.gap_s + 0.2) * fps), frames // 2 - EXPRESSION[0])
    has_event = onset + EXPRESSION[1] + round((2 * spotter.gap_s + spotter.bridge_s) * fps) + 2 < frames
    spec = ClipSpec(fps=fps, seconds=cfg.video_seconds, onset=onset if has_event else None,
                    apex=onset + EXPRESSION[0], offset=onset + EXPRESSION[1])
    truth = make_clip(workdir / "clip.mp4", spec, face)
    return TestClip(Path(truth.path), truth.fps, truth.frames, truth.apex, source)


def spotting(frames: list[np.ndarray], fps: float, locator) -> Stats:
    """Spotter.update on every frame: each region's landmarks followed against frame i-k, and scoring
    (the tracker runs too, untimed here: it has its own stage)."""
    from benchmarks.spotting_bench import spot_frames

    _, _, spot_ms = spot_frames(frames, fps, locator)
    return time_samples(spot_ms)


def live_analyzer(cfg: BenchConfig, workdir: Path):
    """epir-live's Analyzer for the shipped model, on cfg.live_backend ("auto" = what epir-live picks)
    with cfg.threads for ONNX Runtime (epir-live --threads): the same backend, recogniser,
    explanations and calibration as epir-live's default run."""
    from epir_core.errors import BackendUnavailable
    from realtime.session import Analyzer

    try:
        return Analyzer(backend=cfg.live_backend, device=cfg.device, threads=cfg.threads, cache_dir=workdir / "models")
    except BackendUnavailable as e:
        raise StageSkipped(str(e)) from e


def live_model(cfg: BenchConfig, analyzer) -> Stats:
    """One call of the live backend on a 1 x 3 x 28 x 28 numpy input, host copies included."""
    x = np.random.default_rng(0).random((1, 3, 28, 28), dtype=np.float32)
    return time_callable(lambda: analyzer.backend(x), cfg.warmup, cfg.pipeline_runs)


def end_to_end(cfg: BenchConfig, clip: TestClip, analyzer, locator) -> dict:
    """Passes of the clip through the live pipeline, decoding in its capture thread as live: one as
    fast as possible (sustained fps), then cfg.latency_runs at the clip's own rate (latency as a
    camera sees it, one event per pass)."""
    from realtime.pipeline import LiveConfig, LivePipeline
    from realtime.sources import SourceSpec, open_source

    def run(realtime: bool) -> tuple[LivePipeline, float, int]:
        pipeline = LivePipeline(LiveConfig(), clip.fps, analyzer.recognizer(locator))
        with open_source(SourceSpec("video", str(clip.path), fps=clip.fps, realtime=realtime)) as source:
            t0 = time.perf_counter()
            for frame in source:
                pipeline.process(frame)
            wall_s = time.perf_counter() - t0
        pipeline.finish()  # the events still being recognised; releases the tracker's locator
        return pipeline, wall_s, source.dropped

    fast, wall_s, _ = run(realtime=False)
    paced = [run(realtime=True) for _ in range(cfg.latency_runs)]
    events = [e for pipeline, _, _ in paced for e in pipeline.events]
    latencies = [e.latency_ms["frame_to_label"] for e in events]
    recognise = [e.latency_ms["frame_to_label"] - e.latency_ms["spot"] for e in events]
    # Where the time goes: the spotter waiting for frames after the apex, the event's input (face
    # mesh and flow) and the model; both start early on a candidate apex, so they overlap the wait.
    split = {part: _summary([sum(e.latency_ms[k] for k in keys) for e in events])
             for part, keys in (("spotting_wait", ("spot",)), ("input", ("locate", "input")), ("model", ("inference",)))}
    return {
        "status": "ok",
        "reason": None if latencies else "no event was spotted in the clip, so no latency",
        "frames": fast.timer.frames,
        "fps_sustained": fast.timer.frames / wall_s,
        "process_ms_mean": fast.timer.mean_ms(),
        "dropped_frames": sum(dropped for _, _, dropped in paced),
        "events_expected": int(clip.apex is not None) * cfg.latency_runs,
        "events_spotted": len(events),
        "apex_to_label_ms": _summary(latencies),
        "recognise_ms": _summary(recognise),
        "latency_split_ms": split if latencies else None,
        "backend": analyzer.backend.name,
        "backend_threads": analyzer.backend.threads,
    }


def skipped_end_to_end(status: str, reason: str) -> dict:
    """The end-to-end entry, all measurements null, when it was skipped or failed."""
    return dict.fromkeys(_E2E_KEYS) | {"status": status, "reason": reason}


def _summary(samples: list[float]) -> dict | None:
    if not samples:
        return None
    stats = time_samples(samples)
    return {"median_ms": stats.median_ms, "p95_ms": stats.p95_ms, "max_ms": max(samples), "events": len(samples)}
