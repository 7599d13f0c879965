"""Memory over a long live run: epir-live on a long synthetic video, read as fast as possible, with
its resident memory sampled from /proc (Linux only) while it runs.

The video is the demo clip without an expression (slow head drift and sensor noise), played forward
then backward so that the loop has no jump for the spotter to call an event; so no recognition
runs, and what is measured is the per-frame path: capture, tracking, spotting, outputs.

    python -m benchmarks.long_run --frames 100000 --workdir /tmp/epir-long
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import typer

from epir_core.exit_codes import ExitCode
from epir_core.provenance import REPO_ROOT


def make_long_clip(path: Path, frames: int, width: int, height: int) -> None:
    from realtime.demo_clip import ClipSpec, make_clip
    from realtime.sources import read_video

    short = path.with_name("cycle.mp4")
    spec = ClipSpec(width=width, height=height, face_px=height // 2, seconds=1000 / 30, onset=None, drift_px_s=(2.0, 1.0))
    make_clip(short, spec)
    cycle = read_video(short)
    cycle += cycle[-2:0:-1]  # back again: the last frame of a cycle is next to its first
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    for i in range(frames):
        writer.write(cycle[i % len(cycle)])
    writer.release()


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident so far) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def frames_done(csv_path: Path) -> int:
    """The frame index on the last complete line of frames.csv, without reading the whole file."""
    try:
        with open(csv_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 200))
            tail = f.read()
        lines = tail.splitlines() if tail.endswith(b"\n") else tail.splitlines()[:-1]  # a line being written
        return int(lines[-1].split(b",")[0]) + 1
    except (OSError, IndexError, ValueError):
        return 0


def main(
    frames: int = typer.Option(100_000, help="Length of the synthetic video."),
    width: int = typer.Option(320, help="Frame width (height is 3/4 of it)."),
    workdir: Path = typer.Option(Path("/tmp/epir-long"), help="Where the video and the run's outputs go."),
    every_s: float = typer.Option(2.0, help="Seconds between memory samples."),
) -> None:
    """Run epir-live over FRAMES frames and print its memory samples and totals as JSON on stdout."""
    video, out = workdir / f"long-{frames}.mp4", workdir / "run"
    if not video.exists():
        print(f"writing {video}", file=sys.stderr)
        make_long_clip(video, frames, width, width * 3 // 4)
    command = [sys.executable, "-m", "realtime.cli", "--video", str(video), "--no-display", "--backend", "torch",
               "--output", str(out), "--cache-dir", str(workdir / "cache")]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    samples, start = [], time.perf_counter()
    while proc.poll() is None:
        try:
            rss, peak = memory_mb(proc.pid)
        except (OSError, KeyError):  # the process ended between poll() and the read
            break
        samples.append({"s": round(time.perf_counter() - start, 1), "frame": frames_done(out / "frames.csv"),
                        "rss_mb": round(rss, 1), "peak_mb": round(peak, 1)})
        time.sleep(every_s)
    summary = json.loads((out / "metadata.json").read_text())["summary"]
    print(json.dumps({"command": command, "exit_code": proc.returncode, "summary": summary, "samples": samples}))
    raise typer.Exit(ExitCode.OK if proc.returncode == 0 else ExitCode.FAILED)


if __name__ == "__main__":
    typer.run(main)
