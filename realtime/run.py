"""One live session: model and backend, source, pipeline loop, display and outputs; errors become
exit codes (see realtime.cli) and every output is closed whatever happens."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console

from epir_core.provenance import versions
from realtime.sources import SourceSpec

EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL, EXIT_BACKEND = 0, 2, 3, 4, 5


@dataclass(frozen=True)
class RunOptions:
    spec: SourceSpec
    model: Path | None  # None = epir_core.checkpoint.DEFAULT_MODEL_PATH
    backend: str = "auto"
    device: str = "auto"
    min_confidence: float = 0.0
    gap_s: float = 0.2
    output: Path | None = None
    annotate: bool = False
    json_stream: bool = False
    display: bool = True
    cache_dir: Path = Path.home() / ".cache" / "epir-live"


def run(opts: RunOptions, err: Console) -> int:
    """The exit code of the session; messages go to `err` (stderr)."""
    from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
    from epir_core.errors import CheckpointError
    from realtime.backends import BackendUnavailable, file_key, make_backend

    model_path = opts.model or DEFAULT_MODEL_PATH
    try:
        ckpt = load_checkpoint(model_path)
    except CheckpointError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        return EXIT_MODEL
    try:
        backend = make_backend(ckpt.model, opts.backend, opts.device, opts.cache_dir, file_key(model_path))
    except BackendUnavailable as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        return EXIT_BACKEND
    err.print(f"backend: {backend.name} on {backend.device} ({backend.note})", highlight=False)
    recipe = ckpt.recipe  # live inputs are made exactly as the training inputs were

    from realtime.sources import SourceError, open_source

    try:
        source = open_source(opts.spec)
    except SourceError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        return EXIT_SOURCE
    metadata = {
        "source": {"kind": opts.spec.kind, "target": opts.spec.target, "realtime": opts.spec.realtime},
        "fps": source.fps,
        "model": {"path": str(model_path), "class_names": list(ckpt.class_names), "meta": ckpt.meta},
        "recipe": recipe.to_dict(),
        "backend": {"name": backend.name, "device": backend.device, "note": backend.note},
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with source:
        return _loop(opts, err, source, backend, ckpt.class_names, recipe, metadata)


def _loop(opts: RunOptions, err: Console, source, backend, class_names, recipe, metadata: dict) -> int:
    from epir_core.preprocess import FaceLocator
    from realtime.display import Overlay, Window, display_available
    from realtime.outputs import RunOutputs
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
    except OSError as e:
        err.print(f"[red]error:[/red] --output: {e}", highlight=False)
        return EXIT_USAGE
    locator = FaceLocator(min_face_px=config.tracker.min_face_px)
    pipeline = LivePipeline(config, source.fps, Recognizer(backend, class_names, recipe, locator))
    overlay = Overlay(source.fps) if show or opts.annotate else None
    window = Window() if show else None
    code, status, start = EXIT_OK, "done", time.perf_counter()

    def report(events) -> None:
        for event in events:
            outputs.event(event)
            if not opts.json_stream:
                err.print(f"event: {event.label} ({event.confidence:.2f}) apex frame {event.apex_frame} "
                          f"at {event.apex_s:.2f}s, {event.latency_ms['frame_to_label']:.0f} ms", highlight=False)

    try:
        for frame in source:
            result = pipeline.process(frame)
            image = overlay.draw(result, pipeline.timer.mean_ms()) if overlay else None
            outputs.frame(result, image)
            report(result.events)
            if window is not None and not window.show(image):
                status = "quit"
                break
    except SourceError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        code, status = EXIT_SOURCE, f"source error: {e}"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        elapsed = time.perf_counter() - start
        report(pipeline.finish())  # events still being recognised when the stream ended
        for failure in pipeline.failures:
            err.print(f"[yellow]event skipped:[/yellow] {failure}", highlight=False)
        processed = pipeline.timer.frames
        summary = {
            "status": status,
            "frames_processed": processed,
            "frames_dropped": source.dropped,
            "events": len(pipeline.events),
            "events_failed": len(pipeline.failures),
            "seconds": round(elapsed, 3),
            "processing_fps": round(processed / elapsed, 1) if elapsed > 0 else None,
            "mean_stage_ms": {k: round(v, 3) for k, v in pipeline.timer.mean_ms().items()},
            "face_detections": pipeline.tracker.detections,
        }
        outputs.close(summary=summary)
        if window is not None:
            window.close()
        locator.close()
    err.print(f"{status}: {processed} frames ({summary['processing_fps']} fps), {source.dropped} dropped, "
              f"{len(pipeline.events)} events", highlight=False)
    return code
