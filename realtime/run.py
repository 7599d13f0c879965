"""One live session: model and backend, source, pipeline loop, display and outputs.

Every failure ends the same way: one line on stderr, an exit code from epir_core.exit_codes, and a
metadata status that says what happened. Cleanup runs step by step, each step guarded on its own
(a failing step or a second Ctrl-C loses that step only), and the outputs are closed before the
summary is written, so the summary is the last thing to go.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console

from epir_core.exit_codes import ExitCode
from epir_core.paths import cache_root
from epir_core.provenance import versions
from epir_core.runtime import first_line
from realtime.sources import SourceSpec


@dataclass(frozen=True)
class RunOptions:
    spec: SourceSpec
    model: Path | None  # None = epir_core.checkpoint.DEFAULT_MODEL_PATH
    backend: str = "auto"
    device: str = "auto"
    threads: int = 1  # ONNX Runtime's threads: the capture, tracking and recognition threads share the cores
    min_confidence: float = 0.0
    gap_s: float = 0.2
    output: Path | None = None
    annotate: bool = False
    json_stream: bool = False
    display: bool = True
    cache_dir: Path | None = None  # None = epir_core.paths.cache_root()


def run(opts: RunOptions, err: Console) -> ExitCode:
    """The exit code of the session; messages go to `err` (stderr)."""
    try:
        return _run(opts, err)
    except KeyboardInterrupt:  # before the loop started: nothing was written yet
        err.print("interrupted", highlight=False)
        return ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - an unexpected failure is one line and a documented code
        _error(err, f"failed: {first_line(e)}")
        return ExitCode.FAILED


def _error(err: Console, message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


def _run(opts: RunOptions, err: Console) -> ExitCode:
    from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
    from epir_core.errors import BackendUnavailable, CacheError, CheckpointError, DeviceUnavailable
    from epir_core.runtime import ModelCache, RuntimeOptions, make_backend
    from realtime.sources import SourceError, open_source

    model_path = opts.model or DEFAULT_MODEL_PATH
    try:
        ckpt = load_checkpoint(model_path)
    except CheckpointError as e:
        _error(err, str(e))
        return ExitCode.MODEL
    try:
        cache = ModelCache(opts.cache_dir or cache_root())
        backend = make_backend(ckpt.model, opts.backend, RuntimeOptions(device=opts.device, threads=opts.threads), cache)
    except CacheError as e:
        _error(err, str(e))
        return ExitCode.OUTPUT
    except (BackendUnavailable, DeviceUnavailable) as e:
        _error(err, str(e))
        return ExitCode.DEVICE
    threads = f", {backend.threads} thread(s)" if backend.threads else ""
    err.print(f"backend: {backend.name} {backend.precision} on {backend.device}{threads} ({backend.note})",
              highlight=False)
    recipe = ckpt.recipe  # live inputs are made exactly as the training inputs were
    try:
        source = open_source(opts.spec)
    except SourceError as e:
        _error(err, str(e))
        return ExitCode.SOURCE
    metadata = {
        "source": {"kind": opts.spec.kind, "target": opts.spec.target, "realtime": opts.spec.realtime},
        "fps": source.fps,
        "model": {"path": str(model_path), "class_names": list(ckpt.class_names), "meta": ckpt.meta},
        "recipe": recipe.to_dict(),
        "backend": {"name": backend.name, "device": backend.device, "precision": backend.precision,
                    "threads": backend.threads, "note": backend.note},
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with source:
        return _loop(opts, err, source, backend, ckpt.class_names, recipe, metadata)


def _loop(opts: RunOptions, err: Console, source, backend, class_names, recipe, metadata: dict) -> ExitCode:
    from epir_core.preprocess import FaceLocator
    from realtime.display import Overlay, Window, display_available
    from realtime.outputs import OutputError, RunOutputs
    from realtime.pipeline import LiveConfig, LivePipeline
    from realtime.recognition import Recognizer
    from realtime.sources import SourceError
    from realtime.spotting import SpotterConfig

    config = LiveConfig(
        spotter=replace(SpotterConfig(), gap_s=opts.gap_s),
        min_confidence=opts.min_confidence,
        wait_for_labels=not source.live,
    )
    metadata["config"] = asdict(config)
    show = opts.display and display_available()
    if opts.display and not show:
        err.print("no display found: running headless", highlight=False)
    try:
        outputs = RunOutputs(opts.output, metadata, json_stream=opts.json_stream, annotate=opts.annotate)
    except OutputError as e:
        _error(err, str(e))
        return ExitCode.OUTPUT
    except OSError as e:
        _error(err, f"--output: {opts.output}: {e.strerror or e}")
        return ExitCode.OUTPUT
    if outputs.overwritten:
        err.print(f"--output {opts.output}: overwriting {', '.join(outputs.overwritten)}", highlight=False)

    def report(events) -> None:
        for event in events:
            outputs.event(event)
            if not opts.json_stream:
                err.print(f"event: {event.label} ({event.confidence:.2f}) apex frame {event.apex_frame} "
                          f"at {event.apex_s:.2f}s, {event.latency_ms['frame_to_label']:.0f} ms", highlight=False)

    code, status = ExitCode.OK, "done"
    locator = pipeline = window = None
    start = time.perf_counter()
    try:
        locator = FaceLocator(min_face_px=config.tracker.min_face_px)
        pipeline = LivePipeline(config, source.fps, Recognizer(backend, class_names, recipe, locator))
        overlay = Overlay(source.fps) if show or opts.annotate else None
        window = Window() if show else None
        for frame in source:
            result = pipeline.process(frame)
            image = overlay.draw(result, pipeline.timer.mean_ms()) if overlay else None
            outputs.frame(result, image)
            report(result.events)
            if window is not None and not window.show(image):
                status = "quit"
                break
    except SourceError as e:
        code, status = ExitCode.SOURCE, f"source error: {e}"
    except OutputError as e:
        code, status = ExitCode.OUTPUT, f"output error: {e}"
    except KeyboardInterrupt:
        code, status = ExitCode.INTERRUPTED, "interrupted"
    except Exception as e:  # noqa: BLE001 - anything else still closes the outputs and says what happened
        code, status = ExitCode.FAILED, f"failed: {first_line(e)}"
    finally:
        elapsed = time.perf_counter() - start
        problems: list[str] = []
        if code not in (ExitCode.OK, ExitCode.INTERRUPTED):
            _error(err, status)
        interrupted = False  # a Ctrl-C while cleaning up a finished run still makes it "interrupted"
        if pipeline is not None:
            interrupted |= _guarded("finish recognition", lambda: report(pipeline.finish()), problems)
        if window is not None:
            interrupted |= _guarded("close window", window.close, problems)
        if locator is not None:
            interrupted |= _guarded("close face locator", locator.close, problems)
        interrupted |= _guarded("close outputs", outputs.close, problems)
        if interrupted and code == ExitCode.OK:
            code, status = ExitCode.INTERRUPTED, "interrupted"
        summary = _summary(status, pipeline, source, elapsed, problems)
        _guarded("write summary", lambda: outputs.write_metadata(summary=summary), problems)
        for failure in pipeline.failures if pipeline is not None else ():
            err.print(f"[yellow]event skipped:[/yellow] {failure}", highlight=False)
        for problem in problems:
            err.print(f"[yellow]cleanup:[/yellow] {problem}", highlight=False)
        err.print(f"{status}: {summary['frames_processed']} frames ({summary['processing_fps']} fps), "
                  f"{source.dropped} dropped, {summary['events']} events", highlight=False)
    return code


def _guarded(step: str, action, problems: list[str]) -> bool:
    """Run one cleanup step, recording a failure in `problems`; True when a Ctrl-C interrupted it."""
    try:
        action()
    except KeyboardInterrupt:
        problems.append(f"{step}: interrupted")
        return True
    except Exception as e:  # noqa: BLE001 - one failed step must not cost the others
        problems.append(f"{step}: {first_line(e)}")
    return False


def _summary(status: str, pipeline, source, elapsed: float, problems: list[str]) -> dict:
    processed = pipeline.timer.frames if pipeline is not None else 0
    return {
        "status": status,
        "frames_processed": processed,
        "frames_dropped": source.dropped,
        "events": len(pipeline.events) if pipeline is not None else 0,
        "events_failed": len(pipeline.failures) if pipeline is not None else 0,
        "events_dropped": pipeline.dropped_events if pipeline is not None else 0,  # recognition queue full
        "seconds": round(elapsed, 3),
        "processing_fps": round(processed / elapsed, 1) if elapsed > 0 else None,
        "mean_stage_ms": {k: round(v, 3) for k, v in pipeline.timer.mean_ms().items()} if pipeline is not None else {},
        "face_detections": pipeline.tracker.detections if pipeline is not None else 0,
        "cleanup_problems": problems,
    }
