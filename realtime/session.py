"""The live pipeline driven over one source at a time: the one loop under the Python API and epir-live.

An Analyzer loads the model and its backend once; analyzer.open(source) gives a Run: iterate it for
each frame's result, call finish() for the events still being recognised when the source ended,
and close it (it is a context manager). With an output folder a Run writes events.jsonl,
frames.csv, metadata.json and timeline.png (realtime.outputs).

However a Run ends, metadata.json's summary.status says how (STATUSES), and cleanup runs step by
step, each step guarded on its own (a failing step or a second Ctrl-C loses that step only, and
is recorded in summary.cleanup_problems). The outputs are closed before the summary is written,
so the summary is the last thing to go.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape

from epir_core.errors import EPIRError
from epir_core.paths import cache_root
from epir_core.provenance import versions
from epir_core.runtime import first_line
from realtime.outputs import OutputError
from realtime.pipeline import Event, FrameResult, LiveConfig
from realtime.sources import FrameSource, SourceError, SourceSpec, array_source, open_source

# What open() accepts: a camera index, a video file or a folder of images, BGR frames in memory, or a
# SourceSpec that names the kind itself (the CLI's --video / --frames / --camera).
Source = int | str | Path | SourceSpec | Iterable[np.ndarray]

# summary.status: how a run ended. The error statuses go on with their one-line reason.
STATUSES = ("done", "quit", "stopped", "interrupted", "source error: ...", "output error: ...", "failed: ...")
ENDED_WELL = ("done", "quit", "stopped")  # the end of the source, q pressed, the caller stopped iterating


def status_of(exc: BaseException) -> str:
    """The summary status of a run that `exc` ended."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, GeneratorExit):
        return "stopped"  # the caller stopped iterating a stream
    if isinstance(exc, SourceError):
        return f"source error: {reason(exc)}"
    if isinstance(exc, OutputError):
        return f"output error: {reason(exc)}"
    return f"failed: {first_line(exc)}"


def reason(exc: BaseException) -> str:
    """One line saying what went wrong: an EPIRError's own message, else the type and first line."""
    text = str(exc).strip().splitlines()
    return text[0] if isinstance(exc, EPIRError) and text else first_line(exc)


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
    """A FrameSource for a camera index, a video file, a folder of images, an iterable of frames or a
    SourceSpec. Raises SourceError (one line) when it cannot be opened."""
    if isinstance(source, SourceSpec):
        return open_source(source)
    if isinstance(source, (int, np.integer)):
        return open_source(SourceSpec("camera", str(int(source)), fps=fps))
    if isinstance(source, (str, Path)):
        kind = "frames" if Path(source).is_dir() else "video"
        return open_source(SourceSpec(kind, str(source), fps=fps, realtime=realtime))
    return array_source(source, fps)


class Analyzer:
    """A checkpoint (None = the shipped model) on a backend, ready to analyse any number of sources.

    Raises CheckpointError when the model cannot be loaded, BackendUnavailable or DeviceUnavailable
    when the backend or device cannot be used, CacheError when the cache folder is unsafe.
    `explain` adds to each event the input cells its label rests on; `threads` is ONNX Runtime's."""

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                 config: LiveConfig = LiveConfig(), cache_dir: Path | None = None, explain: bool = True,
                 threads: int = 1, err: Console | None = None):
        from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
        from epir_core.runtime import ModelCache, RuntimeOptions, make_backend

        self.model_path = Path(model) if model is not None else DEFAULT_MODEL_PATH
        self.checkpoint = load_checkpoint(self.model_path)
        self.backend = make_backend(self.checkpoint.predictor, backend, RuntimeOptions(device=device, threads=threads),
                                    ModelCache(cache_dir or cache_root()))
        self.explain = model_explainer(self.checkpoint.model) if explain else None
        self.config = config
        self.err = err or Console(stderr=True, soft_wrap=True)  # one line per message

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.checkpoint.class_names)

    def recognizer(self, locator):
        """What labels each event: this checkpoint's backend, class names, input recipe, explanations
        and calibration, with `locator` finding the face (realtime.recognition.Recognizer)."""
        from realtime.recognition import Recognizer

        ckpt = self.checkpoint
        return Recognizer(self.backend, ckpt.class_names, ckpt.recipe, locator, self.explain, ckpt.temperature)

    def describe_backend(self) -> str:
        b = self.backend
        threads = f", {b.threads} thread(s)" if b.threads else ""
        return f"backend: {b.name} {b.precision} on {b.device}{threads} ({b.note})"

    def open(self, source: Source, fps: float | None = None, realtime: bool = False, output: Path | None = None,
             annotate: bool = False, json_stream: bool = False, window: bool = False, echo: bool = False) -> "Run":
        """Raises SourceError when the source cannot be opened, OutputError when `output` cannot be
        written. The other options are Run's."""
        frames = open_any(source, fps, realtime)
        try:
            return Run(self, frames, Path(output) if output is not None else None, annotate=annotate,
                       json_stream=json_stream, window=window, echo=echo)
        except BaseException:
            frames.close()
            raise

    def metadata(self, source: FrameSource, config: LiveConfig) -> dict:
        ckpt, spec, b = self.checkpoint, source.spec, self.backend
        return {
            "source": {"kind": spec.kind, "target": spec.target, "realtime": spec.realtime},
            "fps": source.fps,
            "model": {"path": str(self.model_path), "class_names": list(ckpt.class_names), "meta": ckpt.meta},
            "recipe": ckpt.recipe.to_dict(),  # live inputs are made exactly as the training inputs were
            "backend": {"name": b.name, "device": b.device, "precision": b.precision, "threads": b.threads,
                        "note": b.note},
            "versions": versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": asdict(config),
        }


class Run:
    """One source through the live pipeline: iterate for each frame's FrameResult (its `events` are
    those finished at that frame), then finish() for the rest, then close(); as a context manager the
    exception that ends the block sets the status.

    annotate: also write annotated.mp4; json_stream: print each event as a JSON line on stdout;
    window: show the annotated frames in a window when a display is found (q quits: status "quit");
    echo: print each event as one line on stderr."""

    def __init__(self, analyzer: Analyzer, source: FrameSource, output: Path | None, annotate: bool = False,
                 json_stream: bool = False, window: bool = False, echo: bool = False):
        from epir_core.preprocess import FaceLocator
        from realtime.display import Overlay, Window, display_available
        from realtime.outputs import RunOutputs
        from realtime.pipeline import LivePipeline

        self.source, self.err, self.echo, self.json_stream = source, analyzer.err, echo, json_stream
        self.status = "done"
        self.summary: dict = {}
        self.locator = self.pipeline = self.window = None
        self._start = time.perf_counter()
        self._finished = self._closed = False
        # A live source never waits for a label; a file waits, so its outputs are deterministic.
        config = replace(analyzer.config, wait_for_labels=not source.live)
        try:
            self.outputs = RunOutputs(output, analyzer.metadata(source, config), json_stream, annotate)
        except OSError as e:
            raise OutputError(f"--output: {output}: {e.strerror or e}") from e
        if self.outputs.overwritten:
            self.err.print(f"--output {output}: overwriting {', '.join(self.outputs.overwritten)}", highlight=False,
                           markup=False)
        show = window and display_available()
        if window and not show:
            self.err.print("no display found: running headless", highlight=False)
        try:
            self.overlay = Overlay(source.fps) if show or self.outputs.annotate else None
            self.locator = FaceLocator(min_face_px=config.tracker.min_face_px)
            self.pipeline = LivePipeline(config, source.fps, analyzer.recognizer(self.locator))
            self.window = Window() if show else None
        except BaseException as e:  # the outputs exist: they are closed and say why the run never started
            self.__exit__(type(e), e, None)
            raise

    def __iter__(self) -> Iterator[FrameResult]:
        self._start = time.perf_counter()
        for frame in self.source:
            result = self.pipeline.process(frame)
            image = self.overlay.draw(result, self.pipeline.timer.mean_ms()) if self.overlay else None
            self.outputs.frame(result, image)
            self._write(result.events)
            quitting = self.window is not None and not self.window.show(image)
            yield result
            if quitting:
                self.status = "quit"
                return

    def finish(self) -> list[Event]:
        """The events still being recognised when the source ended (waits for them)."""
        if self._finished or self.pipeline is None:
            return []
        self._finished = True
        return self._write(self.pipeline.finish())

    def _write(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.outputs.event(event)
            if self.echo and not self.json_stream:
                self.err.print(f"event: {event.label} ({event.confidence:.2f}) apex frame {event.apex_frame} "
                               f"at {event.apex_s:.2f}s, {event.latency_ms['frame_to_label']:.0f} ms", highlight=False,
                               markup=False)
        return events

    def close(self) -> dict:
        """Finish, release everything, close the outputs (drawing the timeline), then write the summary;
        returns the summary. A Ctrl-C during a run that had ended well makes it "interrupted" and is
        raised again once the summary is written."""
        if self._closed:
            return self.summary
        self._closed = True
        elapsed = time.perf_counter() - self._start
        problems: list[str] = []
        steps: list[tuple[str, Callable[[], object]]] = [
            ("finish recognition", self.finish),
            ("close window", self.window.close if self.window is not None else None),
            ("close face locator", self.locator.close if self.locator is not None else None),
            ("close source", self.source.close),
            ("close outputs", self.outputs.close),
        ]
        interrupted = False
        for step, action in steps:
            if action is not None:
                interrupted |= _guarded(step, action, problems)
        interrupted &= self.status in ENDED_WELL
        if interrupted:
            self.status = "interrupted"
        self.summary = self._summary(elapsed, problems)
        _guarded("write summary", lambda: self.outputs.write_metadata(summary=self.summary), problems)
        for failure in self.pipeline.failures if self.pipeline is not None else ():
            self.err.print(f"[yellow]event skipped:[/yellow] {escape(failure)}", highlight=False)
        for problem in problems:
            self.err.print(f"[yellow]cleanup:[/yellow] {escape(problem)}", highlight=False)
        if interrupted:
            raise KeyboardInterrupt
        return self.summary

    def _summary(self, elapsed: float, problems: list[str]) -> dict:
        p = self.pipeline
        processed = p.timer.frames if p is not None else 0
        return {
            "status": self.status,
            "frames_processed": processed,
            "frames_dropped": self.source.dropped,
            "events": len(p.events) if p is not None else 0,
            "events_failed": len(p.failures) if p is not None else 0,
            "events_dropped": p.dropped_events if p is not None else 0,  # recognition queue full
            "seconds": round(elapsed, 3),
            "processing_fps": round(processed / elapsed, 1) if elapsed > 0 else None,
            "mean_stage_ms": {k: round(v, 3) for k, v in p.timer.mean_ms().items()} if p is not None else {},
            "face_detections": p.tracker.detections if p is not None else 0,
            "spotter_warm": p.spotter.warm if p is not None else False,  # False: too short to report any event
            "cleanup_problems": problems,
        }

    def end_line(self) -> str:
        """How the run ended, in one line for stderr."""
        s = self.summary
        line = (f"{s['status']}: {s['frames_processed']} frames ({s['processing_fps']} fps), "
                f"{s['frames_dropped']} dropped, {s['events']} events")
        if s["frames_processed"] and not s["spotter_warm"]:
            # A database clip starts at its onset and lasts a fraction of a second: it reports nothing.
            line += (f"; the spotter reports nothing in a face's first {self.pipeline.spotter.warm_after_s:.1f} s "
                     "(it learns each region's noise), which this run never passed: give a short clip a still lead-in")
        return line

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.status = status_of(exc)
        self.close()


def _guarded(step: str, action: Callable[[], object], problems: list[str]) -> bool:
    """Run one cleanup step, recording a failure in `problems`; True when a Ctrl-C interrupted it."""
    try:
        action()
    except KeyboardInterrupt:
        problems.append(f"{step}: interrupted")
        return True
    except Exception as e:  # noqa: BLE001 - one failed step must not cost the others
        problems.append(f"{step}: {first_line(e)}")
    return False
