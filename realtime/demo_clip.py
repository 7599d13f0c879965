"""A demo clip with one known micro-expression, made from a portrait that ships with the project.

The portrait (NASA's public-domain photograph of Eileen Collins, realtime/assets/astronaut.png; see
astronaut.md there) fills a 640x480 frame with the face about 200 px wide. Both mouth corners are
warped for a fraction of a second by a smooth local displacement (onset, apex and offset at known
frames), every frame gets sensor noise, and the picture drifts slowly, as a sitter's head does.
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


@dataclass(frozen=True)
class Portrait:
    """A picture with one face in it. face_square (x, y, side, in pixels) frames the face as the
    composite's crops do, forehead to chin; None means the picture is such a crop. mouth: the two
    mouth corners as fractions of that square."""

    path: Path
    face_square: tuple[int, int, int] | None = None
    mouth: tuple[tuple[float, float], tuple[float, float]] = ((0.33, 0.75), (0.67, 0.75))

    def load(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """(BGR image, face square); FileNotFoundError when the file is not a readable image."""
        image = cv2.imread(str(self.path))
        if image is None:
            raise FileNotFoundError(f"cannot read face image {self.path}")
        return image, self.face_square or (0, 0, image.shape[1])


# The square and the mouth corners come from mediapipe's face mesh on the photograph (landmarks 10
# and 152 for forehead and chin, 61 and 291 for the mouth corners); astronaut.md gives the numbers.
ASTRONAUT = Portrait(Path(__file__).resolve().parent / "assets" / "astronaut.png", face_square=(168, 61, 115),
                     mouth=((0.29, 0.68), (0.68, 0.71)))


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 480
    fps: float = 30.0
    seconds: float = 4.0
    face_px: int = 240  # side of the face square in the frame (the face itself is ~200 px wide)
    face_y: float = 0.45  # height of the face square's centre, as a fraction of the frame's
    onset: int | None = 60  # frame indices of the expression; None = drift and noise only
    apex: int = 65
    offset: int = 72
    amplitude_px: float = 4.0  # peak displacement of the mouth corners at the apex, in frame pixels
    drift_px_s: tuple[float, float] = (10.0, 4.0)  # head drift speed (x, y), frame pixels per second
    noise: float = 2.0  # sensor noise std, grey levels
    seed: int = 0

    def face_at(self, i: int) -> tuple[float, float]:
        """Top-left corner of the face square in frame i: centred, a little high, drifting."""
        t = i / self.fps - self.seconds / 2
        return ((self.width - self.face_px) / 2 + self.drift_px_s[0] * t,
                self.face_y * self.height - self.face_px / 2 + self.drift_px_s[1] * t)


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


def make_clip(path: Path, spec: ClipSpec = ClipSpec(), face: Portrait = ASTRONAUT) -> ClipTruth:
    image, (x0, y0, side) = face.load()
    scale = spec.face_px / side
    picture = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    h, w = picture.shape[:2]
    # Both mouth corners pulled outward and up: a smile-like local motion on a still head.
    smile = sum(Warp((x0 * scale + mx * spec.face_px) / w, (y0 * scale + my * spec.face_px) / h, sign, -0.6,
                     0.07 * spec.face_px / w).field(h, w)
                for (mx, my), sign in zip(face.mouth, (-1.0, 1.0)))  # h x w x 2, unit peak
    rng = np.random.default_rng(spec.seed)
    background = backdrop(spec.width, spec.height, rng).astype(np.uint8)  # where the picture does not cover the frame
    frames = round(spec.seconds * spec.fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames):
            strength = intensity(i, spec) * spec.amplitude_px
            moved = warp_image(picture, smile * strength) if strength > 0 else picture
            fx, fy = spec.face_at(i)
            frame = background.copy()
            cv2.warpAffine(moved, np.float32([[1, 0, fx - x0 * scale], [0, 1, fy - y0 * scale]]),
                           (spec.width, spec.height), dst=frame, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_TRANSPARENT)
            noisy = frame.astype(np.float32) + rng.normal(0, spec.noise, frame.shape).astype(np.float32)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    has_event = spec.onset is not None
    return ClipTruth(str(path), spec.fps, frames, spec.onset, spec.apex if has_event else None,
                     spec.offset if has_event else None)


def backdrop(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth, textured backdrop (height x width x 3 float32 in [0, 255]), so the scene is not a
    flat colour; the spotting benchmark's scenes use it too."""
    blobs = cv2.GaussianBlur(rng.uniform(0, 255, (height // 8, width // 8, 3)).astype(np.float32), (0, 0), 2)
    ramp = np.linspace(60, 140, width, dtype=np.float32)[None, :, None]
    return np.clip(0.5 * cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC) + 0.5 * ramp, 0, 255)


def main(
    out: Path = typer.Argument(..., help="Video file to write (.mp4)."),
    no_event: bool = typer.Option(False, "--no-event", help="Head drift and noise only: a clip that must give no event."),
    fps: float = typer.Option(30.0, help="Frame rate; the expression keeps its duration in seconds."),
    face: Path = typer.Option(None, help="A tight face crop (forehead to chin, as the composite's) to animate "
                              "instead of the shipped portrait."),
) -> None:
    """Write a synthetic clip with one micro-expression at a known frame; print the truth as JSON.

    Example: python -m realtime.demo_clip demo.mp4 && epir-live --video demo.mp4

    Exit codes: 0 written, 3 the face image cannot be read or the video cannot be written.
    """
    scale = fps / 30.0
    spec = ClipSpec(fps=fps, onset=None if no_event else round(60 * scale), apex=round(65 * scale),
                    offset=round(72 * scale))
    try:
        truth = make_clip(out, spec, Portrait(face) if face else ASTRONAUT)
    except (OSError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    except OSError as e:  # the clip cannot be written
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(ExitCode.OUTPUT) from None
    typer.echo(json.dumps(asdict(truth)))


if __name__ == "__main__":
    typer.run(main)
