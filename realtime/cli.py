"""epir-live: spot and recognise micro-expressions live on a camera, a video or a folder of frames."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from realtime.backends import BACKENDS
from realtime.run import EXIT_USAGE, RunOptions, run
from realtime.sources import SourceSpec

HELP = """Spot micro-expressions as they happen and label them with the EPIR model.

\b
Examples:
  epir-live --camera 0
  python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4 --output run/
  epir-live --frames clip_frames/ --fps 200 --no-display --json > events.jsonl
  epir-live --video talk.mp4 --backend onnx --device cpu --output run/ --annotate

\b
Exit codes:
  0  done (end of the source, or q pressed)
  2  usage error (bad or conflicting options)
  3  the source cannot be opened or read (missing/corrupt/empty video, camera lost)
  4  the model file is missing or not an EPIR checkpoint
  5  the requested device or backend is not available here

Outputs written so far are kept and closed properly on every exit.
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None, help=HELP)
err = Console(stderr=True)


def _fail(code: int, message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


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
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0,
                                         help="Events below this confidence are kept but marked not accepted."),
    gap_s: float = typer.Option(0.2, "--gap", min=0.01, help="Spotting gap k in seconds (also the detection lag)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for events.jsonl, frames.csv, metadata.json."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 into --output."),
    json_out: bool = typer.Option(False, "--json", help="Stream events as JSON lines on stdout."),
    no_display: bool = typer.Option(False, "--no-display", help="No window (automatic without a display)."),
    cache_dir: Path = typer.Option(RunOptions.cache_dir, "--cache-dir", help="Where exported/compiled models are cached."),
) -> None:
    chosen = [(k, v) for k, v in (("camera", camera), ("video", video), ("frames", frames)) if v is not None]
    if len(chosen) != 1:
        raise _fail(EXIT_USAGE, "give exactly one of --camera, --video, --frames")
    if backend not in ("auto", *BACKENDS) or device not in ("auto", "cpu", "cuda"):
        raise _fail(EXIT_USAGE, f"--backend is auto or one of {', '.join(BACKENDS)}; --device is auto, cpu or cuda")
    if annotate and output is None:
        raise _fail(EXIT_USAGE, "--annotate needs --output")
    kind, target = chosen[0]
    spec = SourceSpec(kind, str(target), fps=fps, realtime=realtime)
    options = RunOptions(
        spec=spec, model=model, backend=backend, device=device,
        min_confidence=min_confidence, gap_s=gap_s, output=output, annotate=annotate, json_stream=json_out,
        display=not no_display, cache_dir=cache_dir,
    )
    raise typer.Exit(run(options, err))


if __name__ == "__main__":
    sys.exit(app())
