"""epir-live: spot and recognise micro-expressions live on a camera, a video or a folder of frames."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from epir_core.exit_codes import ExitCode, exit_help
from epir_core.runtime import BACKENDS, DEVICES
from realtime.run import RunOptions, run
from realtime.sources import SourceSpec

HELP = f"""Spot micro-expressions as they happen and label them with the EPIR model.

\b
Examples:
  epir-live --camera 0
  python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4 --output run/
  epir-live --frames clip_frames/ --fps 200 --no-display --json > events.jsonl
  epir-live --video talk.mp4 --backend onnx --device cpu --output run/ --annotate

\b
Exit codes (the same for every command of the project):
{exit_help(*ExitCode)}

Outputs written so far are kept and closed properly on every exit, and metadata.json's
summary.status says how the run ended.
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None, help=HELP)
err = Console(stderr=True)


def _fail(code: ExitCode, message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(int(code))


@app.command(help=HELP)
def main(
    camera: Optional[int] = typer.Option(None, "--camera", help="Camera index (0 = the default webcam)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video file."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Folder of image files, read in sorted order."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate (required with --frames; overrides the source's)."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own rate instead of as fast as possible."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (default: the shipped CDE model)."),
    backend: str = typer.Option("auto", "--backend", help="auto | tensorrt | compile | onnx | torch"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    threads: int = typer.Option(RunOptions.threads, "--threads", min=1, help="CPU threads of ONNX Runtime."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0,
                                         help="Events below this confidence are kept but marked not accepted."),
    gap_s: float = typer.Option(0.2, "--gap", min=0.01, help="Spotting gap k in seconds (also the detection lag)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for events.jsonl, frames.csv, metadata.json."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 into --output."),
    json_out: bool = typer.Option(False, "--json", help="Stream events as JSON lines on stdout."),
    no_display: bool = typer.Option(False, "--no-display", help="No window (automatic without a display)."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Where exported/compiled models are cached, mode 0700 "
        "[default: $XDG_CACHE_HOME/epir-live or ~/.cache/epir-live]."),
) -> None:
    chosen = [(k, v) for k, v in (("camera", camera), ("video", video), ("frames", frames)) if v is not None]
    if len(chosen) != 1:
        raise _fail(ExitCode.USAGE, "give exactly one of --camera, --video, --frames")
    if backend not in ("auto", *BACKENDS) or device not in DEVICES:
        raise _fail(ExitCode.USAGE, f"--backend is auto or one of {', '.join(BACKENDS)}; --device is one of "
                                    f"{', '.join(DEVICES)}")
    if annotate and output is None:
        raise _fail(ExitCode.USAGE, "--annotate needs --output")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise _fail(ExitCode.USAGE, f"--fps must be a positive number of frames per second, not {fps:g}")
    kind, target = chosen[0]
    spec = SourceSpec(kind, str(target), fps=fps, realtime=realtime)
    options = RunOptions(
        spec=spec, model=model, backend=backend, device=device, threads=threads,
        min_confidence=min_confidence, gap_s=gap_s, output=output, annotate=annotate, json_stream=json_out,
        display=not no_display, cache_dir=cache_dir,
    )
    raise typer.Exit(int(run(options, err)))


if __name__ == "__main__":
    sys.exit(app())
