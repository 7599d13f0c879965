"""epir-live: spot and recognise micro-expressions live on a camera, a video, a folder of frames, or a
batch of videos. A thin layer over the Python API (realtime.session, realtime.api): it checks the
options, runs one source or a batch, and maps how that ended to an exit code (epir_core.exit_codes)
with one line on stderr."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from epir_core.errors import BackendUnavailable, CacheError, CheckpointError, DeviceUnavailable, EPIRError
from epir_core.exit_codes import ExitCode, exit_help
from epir_core.runtime import BACKENDS, DEVICES
from realtime.outputs import OutputError
from realtime.sources import SourceError, SourceSpec

HELP = f"""Spot micro-expressions as they happen and label them with the EPIR model.

\b
Examples:
  epir-live --camera 0
  python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4 --output run/
  epir-live --frames clip_frames/ --fps 200 --no-display --json > events.jsonl
  epir-live --video talk.mp4 --backend onnx --device cpu --output run/ --annotate
  epir-live --video a.mp4 --video b.mp4 --output runs/
  epir-live --videos clips/ --output runs/

\b
A batch (--video more than once, or --videos DIR: every video file under DIR, recursively) writes
one run folder per video under --output, plus events.csv (one row per event, its video first) and
videos.csv (one row per video: status, events, reason). A video that fails is reported and
skipped; the batch goes on and exits 7.

\b
Exit codes (the same for every command of the project):
{exit_help(*ExitCode)}

Outputs written so far are kept and closed properly on every exit, and metadata.json's
summary.status says how the run ended.
"""

# What ended a run -> its exit code; anything else is an unexpected error (1).
EXIT_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode], ...] = (
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
    (SourceError, ExitCode.SOURCE),
    (CheckpointError, ExitCode.MODEL),
    ((BackendUnavailable, DeviceUnavailable), ExitCode.DEVICE),
    ((OutputError, CacheError), ExitCode.OUTPUT),
)

app = typer.Typer(add_completion=False, rich_markup_mode=None, help=HELP)
err = Console(stderr=True, soft_wrap=True)  # one line per message, however long


def exit_code(exc: BaseException) -> ExitCode:
    return next((code for kinds, code in EXIT_CODES if isinstance(exc, kinds)), ExitCode.FAILED)


def _fail(code: ExitCode, message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(int(code))


@app.command(help=HELP)
def main(
    camera: Optional[int] = typer.Option(None, "--camera", help="Camera index (0 = the default webcam)."),
    video: List[Path] = typer.Option([], "--video", metavar="FILE", help="Video file; more than once for a batch."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Folder: a batch of every video file under it."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Folder of image files, read in frame order (img99 before img100)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate (required with --frames; overrides the source's)."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own rate instead of as fast as possible."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (default: the shipped CDE model)."),
    backend: str = typer.Option("auto", "--backend", help="auto | tensorrt | compile | onnx | torch"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads of ONNX Runtime (the capture, tracking "
                                "and recognition threads share the cores)."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0,
                                         help="Events below this confidence are kept but marked not accepted."),
    gap_s: float = typer.Option(0.2, "--gap", min=0.01, help="Spotting gap k in seconds (also the detection lag)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for events.jsonl, frames.csv, "
                                          "metadata.json, timeline.png (a batch: one such folder per video)."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 into --output."),
    json_out: bool = typer.Option(False, "--json", help="Stream events as JSON lines on stdout (one source)."),
    no_display: bool = typer.Option(False, "--no-display", help="No window (automatic without a display; a batch "
                                    "has none)."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Where exported/compiled models are cached, mode 0700 "
        "[default: $XDG_CACHE_HOME/epir-live or ~/.cache/epir-live]."),
) -> None:
    batch = len(video) > 1 or videos is not None
    chosen = [k for k, given in (("camera", camera is not None), ("video", bool(video) or videos is not None),
                                 ("frames", frames is not None)) if given]
    if len(chosen) != 1:
        raise _fail(ExitCode.USAGE, "give exactly one of --camera, --video (or --videos), --frames")
    if backend not in ("auto", *BACKENDS) or device not in DEVICES:
        raise _fail(ExitCode.USAGE, f"--backend is auto or one of {', '.join(BACKENDS)}; --device is one of "
                                    f"{', '.join(DEVICES)}")
    if annotate and output is None:
        raise _fail(ExitCode.USAGE, "--annotate needs --output")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise _fail(ExitCode.USAGE, f"--fps must be a positive number of frames per second, not {fps:g}")
    if batch and (output is None or json_out or realtime):
        raise _fail(ExitCode.USAGE, "a batch needs --output (one folder per video) and takes neither --json nor "
                                    "--realtime")
    from realtime.pipeline import LiveConfig
    from realtime.session import Analyzer
    from realtime.spotting import SpotterConfig

    config = LiveConfig(spotter=replace(SpotterConfig(), gap_s=gap_s), min_confidence=min_confidence)
    run = None
    try:
        paths = [*video, *(_find_videos(videos) if videos is not None else ())]
        analyzer = Analyzer(model, backend, device, config, cache_dir, threads=threads, err=err)
        err.print(analyzer.describe_backend(), highlight=False, markup=False)
        if batch:
            code = _batch(analyzer, paths, output, fps, annotate)
        else:
            target = camera if camera is not None else paths[0] if paths else frames
            spec = SourceSpec(chosen[0], str(target), fps=fps, realtime=realtime)
            run = analyzer.open(spec, output=output, annotate=annotate, json_stream=json_out,
                                window=not no_display, echo=True)
            with run:
                for _ in run:
                    pass
            code = ExitCode.OK
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - every ending is one line and a documented code
        code = _report(e, run)
    if run is not None:
        err.print(run.end_line(), highlight=False, markup=False)
    raise typer.Exit(int(code))


def _report(exc: BaseException, run) -> ExitCode:
    """The exit code of what ended the command, and its one line on stderr: the run's status once a
    run started (metadata.json says the same), else what went wrong."""
    from realtime.session import reason, status_of

    code = exit_code(exc)
    if code == ExitCode.INTERRUPTED:
        if run is None:  # a run's own end line says "interrupted"
            err.print("interrupted", highlight=False)
        return code
    message = run.status if run is not None else reason(exc) if isinstance(exc, EPIRError) else status_of(exc)
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return code


def _find_videos(folder: Path) -> list[Path]:
    from realtime.api import find_videos

    found = find_videos(folder)
    if not found:
        raise SourceError(f"--videos: no video files under {folder}")
    return found


def _batch(analyzer, paths: list[Path], output: Path, fps: float | None, annotate: bool) -> ExitCode:
    """Every video through analyze_videos with one model load; PARTIAL when some of them failed."""
    from realtime.api import analyze_videos

    # Bars only on a terminal: redirected to a log, stderr keeps just the lines that say something.
    result = analyze_videos(paths, output, fps=fps, annotate=annotate, analyzer=analyzer, progress=err.is_terminal)
    events = sum(len(e) for e in result.events.values())
    failed = f"; {len(result.failed)} failed (see {output / 'videos.csv'})" if result.failed else ""
    err.print(f"{len(result.events)} of {len(paths)} videos done, {events} events in {result.summary}{failed}",
              highlight=False, markup=False)
    return ExitCode.PARTIAL if result.failed else ExitCode.OK


if __name__ == "__main__":
    sys.exit(app())
