"""A demo clip with one known micro-expression, made from a real face of the composite set.

The face (an apex crop from ../shared/data, 224x224) is pasted on a textured 640x480 background,
warped for a fraction of a second by a smooth local displacement at both mouth corners (onset, apex
and offset at known frames), with sensor noise on every frame and a slow head drift throughout.
The end-to-end test and the README's no-camera demo both use it:

    python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import typer

from epir_core.exit_codes import ExitCode
from epir_core.paths import data_root
from epir_core.preprocess.synthetic import Warp, warp_image

FACES = "megc2019_composite/apex_face_224"  # under the data root
DEFAULT_FACE = "006_006_1_2.jpg"


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 480
    fps: float = 30.0
    seconds: float = 4.0
    face_px: int = 240  # side of the pasted face
    onset: int | None = 60  # frame indices of the expression; None = drift and noise only
    apex: int = 65
    offset: int = 72
    amplitude_px: float = 4.0  # peak displacement of the mouth corners at the apex, in face pixels
    drift_px_s: tuple[float, float] = (10.0, 4.0)  # head drift speed (x, y), frame pixels per second
    noise: float = 2.0  # sensor noise std, grey levels
    seed: int = 0


@dataclass(frozen=True)
class ClipTruth:
    path: str
    fps: float
    frames: int
    onset: int | None
    apex: int | None
    offset: int | None


def intensity(i: int, spec: ClipSpec) -> float:
    """Expression strength of frame i: 0 outside onset..offset, smooth rise to 1 at the apex."""
    if spec.onset is None or not spec.onset < i < spec.offset:
        return 0.0
    edge, end = (spec.onset, spec.apex) if i <= spec.apex else (spec.offset, spec.apex)
    return math.sin(0.5 * math.pi * (i - edge) / (end - edge)) ** 2


def make_clip(path: Path, spec: ClipSpec = ClipSpec(), face_file: Path | None = None) -> ClipTruth:
    face_path = face_file or data_root() / FACES / DEFAULT_FACE
    face = cv2.imread(str(face_path))
    if face is None:
        raise FileNotFoundError(f"cannot read face image {face_path}")
    face = cv2.resize(face, (spec.face_px, spec.face_px), interpolation=cv2.INTER_CUBIC)
    # Both mouth corners pulled outward and up: a smile-like local motion on a still head.
    smile = Warp(0.33, 0.75, -1.0, -0.6, 0.07).field(spec.face_px, spec.face_px) + Warp(
        0.67, 0.75, 1.0, -0.6, 0.07
    ).field(spec.face_px, spec.face_px)  # face_px x face_px x 2, unit peak
    rng = np.random.default_rng(spec.seed)
    background = _background(spec, rng)
    frames = round(spec.seconds * spec.fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames):
            strength = intensity(i, spec) * spec.amplitude_px
            moved = warp_image(face, smile * strength) if strength > 0 else face
            t = i / spec.fps
            dx = (spec.width - spec.face_px) / 2 + spec.drift_px_s[0] * (t - spec.seconds / 2)
            dy = (spec.height - spec.face_px) / 2 + spec.drift_px_s[1] * (t - spec.seconds / 2)
            frame = background.copy()
            cv2.warpAffine(moved, np.float32([[1, 0, dx], [0, 1, dy]]), (spec.width, spec.height), dst=frame,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
            noisy = frame.astype(np.float32) + rng.normal(0, spec.noise, frame.shape).astype(np.float32)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    has_event = spec.onset is not None
    return ClipTruth(str(path), spec.fps, frames, spec.onset, spec.apex if has_event else None,
                     spec.offset if has_event else None)


def _background(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """A smooth, textured backdrop (H x W x 3 uint8), so the scene is not a flat colour."""
    blobs = cv2.GaussianBlur(rng.uniform(0, 255, (spec.height // 8, spec.width // 8, 3)).astype(np.float32), (0, 0), 2)
    ramp = np.linspace(60, 140, spec.width, dtype=np.float32)[None, :, None]
    backdrop = 0.5 * cv2.resize(blobs, (spec.width, spec.height), interpolation=cv2.INTER_CUBIC) + 0.5 * ramp
    return np.clip(backdrop, 0, 255).astype(np.uint8)


def main(
    out: Path = typer.Argument(..., help="Video file to write (.mp4)."),
    no_event: bool = typer.Option(False, "--no-event", help="Head drift and noise only: a clip that must give no event."),
    fps: float = typer.Option(30.0, help="Frame rate; the expression keeps its duration in seconds."),
    face: Path = typer.Option(None, help="Face image to animate (default: a composite apex face)."),
) -> None:
    """Write a synthetic clip with one micro-expression at a known frame; print the truth as JSON.

    Example: python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4
    """
    scale = fps / 30.0
    spec = ClipSpec(fps=fps, onset=None if no_event else round(60 * scale), apex=round(65 * scale),
                    offset=round(72 * scale))
    try:
        truth = make_clip(out, spec, face)
    except FileNotFoundError as e:  # the face image
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    except OSError as e:  # the clip cannot be written
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(ExitCode.OUTPUT) from None
    typer.echo(json.dumps(asdict(truth)))


if __name__ == "__main__":
    typer.run(main)
