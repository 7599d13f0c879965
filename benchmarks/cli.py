"""epir-bench: what the model and the live pipeline cost, measured the same way every time.

Exit codes: 0 done; 2 bad usage; 3 the requested device is not available; 4 the run failed (one line
on stderr; with --output, nothing already in the file is touched).
"""

from __future__ import annotations

import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

import typer
from rich.console import Console
from rich.status import Status

from benchmarks.config import make_config
from benchmarks.live_bench import composite_faces
from benchmarks.record import run_benchmark
from benchmarks.report import append_jsonl, render

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

EXIT_DEVICE, EXIT_FAILED = 3, 4


@app.command(
    epilog="Examples:\n\n"
    "  epir-bench                       # default: CPU, well under a minute\n\n"
    "  epir-bench --quick --json        # CI smoke test, JSON on stdout\n\n"
    "  epir-bench --device cuda --output bench.jsonl   # on a GPU: + torch.compile, TensorRT, fp16\n\n"
    "  epir-bench --full --output bench.jsonl          # every preset and backend (minutes)\n\n"
    "Exit codes: 0 done, 2 bad usage, 3 the device is not available, 4 the run failed.\n"
)
def main(
    quick: bool = typer.Option(False, "--quick", help="CI smoke test: seconds, eager model only."),
    full: bool = typer.Option(False, "--full", help="Every preset and backend, both batch sizes, fp16 on GPU."),
    device: str = typer.Option("auto", help="cpu, cuda, or auto (cuda when available)."),
    threads: int = typer.Option(2, min=1, help="Threads for torch, OpenCV and ONNX Runtime."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON on stdout."),
    output: Path = typer.Option(None, "--output", help="Append the record as one JSON line to this file."),
    data_root: Path = typer.Option(
        None, help="A data root holding megc2019_composite/: the clip animates its first apex face "
        "[default: the shipped portrait]."
    ),
) -> None:
    """Measure parameters, MACs, model latency per backend, pipeline stages and end-to-end speed."""
    err = Console(stderr=True)
    if not err.is_terminal:
        err = Console(stderr=True, width=160)  # a log file: wide enough that the tables stay readable
    if quick and full:
        err.print("error: choose one of --quick and --full")
        raise typer.Exit(2)
    if data_root is not None and not composite_faces(data_root):
        err.print(f"error: --data-root: no megc2019_composite/apex_face_224/*.jpg under {data_root}")
        raise typer.Exit(2)
    device = _resolve_device(device, err)
    cfg = make_config("quick" if quick else "full" if full else "default", device, threads)
    try:
        # Libraries that print (ptflops, exporters) must not corrupt the JSON on stdout.
        with redirect_stdout(sys.stderr), Status("starting", console=err) as status:
            record = run_benchmark(cfg, data_root, lambda msg: status.update(msg))
    except Exception as e:  # a failed run is one line and an exit code, not a traceback
        err.print(f"error: benchmark failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}")
        raise typer.Exit(EXIT_FAILED) from None
    render(record, err)
    if output is not None:
        try:
            append_jsonl(record, output)
        except OSError as e:
            err.print(f"error: --output: cannot append to {output}: {e.strerror or e}")
            raise typer.Exit(EXIT_FAILED) from None
        err.print(f"appended to {output}")
    if json_out:
        typer.echo(json.dumps(record, indent=2, sort_keys=True))


def _resolve_device(device: str, err: Console) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        err.print(f"error: unknown device {device!r}; use cpu, cuda or auto")
        raise typer.Exit(2)
    if device == "cuda" and not torch.cuda.is_available():
        err.print("error: --device cuda, but this torch build sees no CUDA GPU")
        raise typer.Exit(EXIT_DEVICE)
    return device


if __name__ == "__main__":
    app()
