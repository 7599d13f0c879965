"""The live pipeline driven over one source at a time: the layer under the Python API.

An Analyzer loads the model and its backend once; analyzer.open(source) gives a Run: iterate it for
each frame's result, call finish() for the events still being recognised when the source ended,
and close it (it is a context manager). With an output folder a Run writes events.jsonl,
frames.csv, metadata.json and timeline.png (realtime.outputs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from rich.console import Console

from epir_core.paths import cache_root
from epir_core.provenance import versions
from realtime.pipeline import Event, FrameResult, LiveConfig
from realtime.sources import FrameSource, SourceError, SourceSpec, array_source, open_source

# What open() accepts: a camera index, a video file or a folder of images, or BGR frames in memory.
Source = int | str | Path | Iterable[np.ndarray]


def model_explainer(model: torch.nn.Module):
    """A 3 x 28 x 28 model input -> its patch weights (grid x grid), by EPIR.explain in eager
    PyTorch on the model's device: the label itself comes from the backend."""
    device = next(model.parameters()).device

    def explain(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            _, weights = model.explain(torch.from_numpy(x[None]).to(device))
        return weights[0].cpu().numpy()

    return explain


def open_any(source: Source, fps: float | None = None, realtime: bool = False) -> FrameSource:
    """A FrameSource for a camera index, a video file, a folder of images or an iterable of frames.

    Raises SourceError (one line) when it cannot be opened."""
    if isinstance(source, (int, np.integer)):
        return open_source(SourceSpec("camera", str(int(source)), fps=fps))
    if isinstance(source, (str, Path)):
        kind = "frames" if Path(source).is_dir() else "video"
        return open_source(SourceSpec(kind, str(source), fps=fps, realtime=realtime))
    return array_source(source, fps)


class Analyzer:
    """A checkpoint (None = the shipped model) on a backend, ready to analyse any number of sources.

    Raises CheckpointError when the model cannot be loaded and BackendUnavailable when the backend or
    device cannot be used. `explain` adds to each event the input cells its label rests on."""

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                 config: LiveConfig = LiveConfig(), cache_dir: Path | None = None, explain: bool = True,
                 err: Console | None = None):
        from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
        from epir_core.runtime import ModelCache, RuntimeOptions, make_backend

        self.model_path = Path(model) if model is not None else DEFAULT_MODEL_PATH
        self.checkpoint = load_checkpoint(self.model_path)
        self.backend = make_backend(self.checkpoint.model, backend, RuntimeOptions(device=device),
                                    ModelCache(cache_dir or cache_root()))
        self.explain = model_explainer(self.checkpoint.model) if explain else None
        self.config = config
        self.err = err or Console(stderr=True)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.checkpoint.class_names)

    def open(self, source: Source, fps: float | None = None, realtime: bool = False, output: Path | None = None,
             annotate: bool = False) -> "Run":
        """Raises SourceError when the source cannot be opened, OSError when `output` cannot be written."""
        frames = open_any(source, fps, realtime)
        try:
            return Run(self, frames, Path(output) if output is not None else None, annotate)
        except BaseException:
            frames.close()
            raise

    def metadata(self, source: FrameSource, config: LiveConfig) -> dict:
        ckpt, spec = self.checkpoint, source.spec
        return {
            "source": {"kind": spec.kind, "target": spec.target, "realtime": spec.realtime},
            "fps": source.fps,
            "model": {"path": str(self.model_path), "class_names": list(ckpt.class_names), "meta": ckpt.meta},
            "recipe": ckpt.recipe.to_dict(),
            "backend": {"name": self.backend.name, "device": self.backend.device, "note": self.backend.note},
            "versions": versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": asdict(config),
        }


class Run:
    """One source through the live pipeline: iterate for each frame's FrameResult (its `events` are
    those finished at that frame), then finish() for the rest, then close()."""

    def __init__(self, analyzer: Analyzer, source: FrameSource, output: Path | None, annotate: bool):
        from epir_core.preprocess import FaceLocator
        from realtime.display import Overlay
        from realtime.outputs import RunOutputs
        from realtime.pipeline import LivePipeline
        from realtime.recognition import Recognizer

        self.source, self.err = source, analyzer.err
        # A live source never waits for a label; a file waits, so its outputs are deterministic.
        config = replace(analyzer.config, wait_for_labels=not source.live)
        self.outputs = RunOutputs(output, analyzer.metadata(source, config), annotate=annotate)
        self.overlay = Overlay(source.fps) if self.outputs.annotate else None
        self.locator = FaceLocator(min_face_px=config.tracker.min_face_px)
        ckpt = analyzer.checkpoint
        recognizer = Recognizer(analyzer.backend, ckpt.class_names, ckpt.recipe, self.locator, analyzer.explain)
        self.pipeline = LivePipeline(config, source.fps, recognizer)
        self.status = "done"
        self._start = time.perf_counter()
        self._finished = self._closed = False

    def __iter__(self) -> Iterator[FrameResult]:
        self._start = time.perf_counter()
        for frame in self.source:
            result = self.pipeline.process(frame)
            image = self.overlay.draw(result, self.pipeline.timer.mean_ms()) if self.overlay else None
            self.outputs.frame(result, image)
            self._write(result.events)
            yield result

    def finish(self) -> list[Event]:
        """The events still being recognised when the source ended (waits for them)."""
        if self._finished:
            return []
        self._finished = True
        return self._write(self.pipeline.finish())

    def _write(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.outputs.event(event)
        return events

    def close(self) -> dict:
        """Finish, write the summary (and the timeline) and release everything; returns the summary."""
        if self._closed:
            return self.summary
        self._closed = True
        try:
            self.finish()
        finally:
            for failure in self.pipeline.failures:
                self.err.print(f"[yellow]event skipped:[/yellow] {failure}", highlight=False)
            elapsed = time.perf_counter() - self._start
            processed = self.pipeline.timer.frames
            self.summary = {
                "status": self.status,
                "frames_processed": processed,
                "frames_dropped": self.source.dropped,
                "events": len(self.pipeline.events),
                "events_failed": len(self.pipeline.failures),
                "seconds": round(elapsed, 3),
                "processing_fps": round(processed / elapsed, 1) if elapsed > 0 else None,
                "mean_stage_ms": {k: round(v, 3) for k, v in self.pipeline.timer.mean_ms().items()},
                "face_detections": self.pipeline.tracker.detections,
            }
            self.locator.close()
            self.source.close()
            self.outputs.close()
            self.outputs.write_metadata(summary=self.summary)
        return self.summary

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is KeyboardInterrupt:
            self.status = "interrupted"
        elif exc_type is GeneratorExit:
            self.status = "stopped"  # the caller stopped iterating a stream
        elif exc is not None:
            kind = "source error" if isinstance(exc, SourceError) else type(exc).__name__
            self.status = f"{kind}: {str(exc).strip()}"
        self.close()
