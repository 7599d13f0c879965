"""epir-bench: what the model and the live pipeline cost, measured the same way every time.

Model backends are built by epir_core.runtime exactly as epir-live builds them; --threads is the
CPU threads of torch, OpenCV and ONNX Runtime, and each latency row records the threads it ran on.
"""

from __future__ import annotations

import json
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.status import Status

from benchmarks.config import make_config
from benchmarks.live_bench import composite_faces
from benchmarks.record import run_benchmark
from benchmarks.live_bench import composite_faces
from benchmarks.report import append_jsonl, render, render_spotting
from benchmarks.spotting_bench import spotting_record
from benchmarks.timing import set_threads
from epir_core.errors import DeviceUnavailable
from epir_core.exit_codes import ExitCode, exit_help
from epir_core.paths import data_root as default_data_root
from epir_core.runtime import first_line, resolve_device

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
EXIT_CODES = (ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.DEVICE, ExitCode.OUTPUT, ExitCode.INTERRUPTED)


@app.command(
    epilog="Examples:\n\n"
    "  epir-bench                       # default: CPU, well under a minute\n\n"
    "  epir-bench --quick --json        # CI smoke test, JSON on stdout\n\n"
    "  epir-bench --device cuda --output bench.jsonl   # on a GPU: + torch.compile, TensorRT, fp16\n\n"
    "  epir-bench --full --output bench.jsonl          # every preset and backend (minutes)\n\n"
    "  epir-bench --spotting --json                    # does the spotter find micro-expressions? (minutes)\n\n"
    "Exit codes (with --output, nothing already in the file is touched on a failure):\n\n"
    "\b\n" + exit_help(*EXIT_CODES) + "\n"
)
def main(
    quick: bool = typer.Option(False, "--quick", help="CI smoke test: seconds, eager model (torch backend) only."),
    full: bool = typer.Option(False, "--full", help="Every preset and backend, both batch sizes, fp16 on GPU."),
    spotting: bool = typer.Option(False, "--spotting", help="The spotting benchmark instead: scenario clips on many "
                                  "faces, recall, precision, F1, false events per minute, apex error (--quick: 2 clips)."),
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
        _fail(err, "choose one of --quick and --full", ExitCode.USAGE)
    if data_root is not None and not composite_faces(data_root):
        _fail(err, f"--data-root: no megc2019_composite/apex_face_224/*.jpg under {data_root}", ExitCode.USAGE)
    try:
        device = resolve_device(device)
    except ValueError as e:
        _fail(err, str(e), ExitCode.USAGE)
    except DeviceUnavailable as e:
        _fail(err, str(e), ExitCode.DEVICE)
    cfg = make_config("quick" if quick else "full" if full else "default", device, threads)
    try:
        # Libraries that print (ptflops, exporters) must not corrupt the JSON on stdout.
        with redirect_stdout(sys.stderr), Status("starting", console=err) as status:
            if spotting:
                # The scenarios animate many composite faces where the data is (else the shipped portrait).
                record = spotting_record(data_root or default_data_root(), quick, set_threads(threads),
                                         lambda msg: status.update(msg))
            else:
                record = run_benchmark(cfg, data_root, lambda msg: status.update(msg))
    except KeyboardInterrupt:
        _fail(err, "interrupted: nothing was recorded", ExitCode.INTERRUPTED)
    except Exception as e:  # a failed run is one line and an exit code, not a traceback
        _fail(err, f"benchmark failed: {first_line(e)}", ExitCode.FAILED)
    (render_spotting if spotting else render)(record, err)
    if output is not None:
        try:
            append_jsonl(record, output)
        except OSError as e:
            _fail(err, f"--output: cannot append to {output}: {e.strerror or e}", ExitCode.OUTPUT)
        err.print(f"appended to {output}")
    if json_out:
        typer.echo(json.dumps(record, indent=2, sort_keys=True))


def _fail(err: Console, message: str, code: ExitCode) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


if __name__ == "__main__":
    app()
