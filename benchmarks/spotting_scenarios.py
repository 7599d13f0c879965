"""Scenario clips for the spotting benchmark: real faces, known micro-expressions, distractors.

Each clip is one face pasted on a 640x480 backdrop at face_px, with slow head sway (shift, roll,
scale), light drift and sensor noise on every frame. Expressions are smooth local displacements
placed on the face's own landmarks, peaking at a set amplitude in pixels of a 260 px face (a larger
face, as from a camera of higher resolution, moves as many more pixels; `enlarged`):

- brow raise (both brows up), frown (brows together and down), smile (mouth corners out and up),
  lip press (lower lip up): micro-expressions, rise 0.07-0.15 s, fall 0.1-0.25 s; a held one stays
  at its apex for 0.1 s or more between, and all of it lasts at most 0.45 s; or rise and fall as a
  coding sheet gives them (CAS(ME)^3's: apex to offset a median 0.47 s, over 0.5 s for 44 %);
- distractors: blinks, talking (the jaw and lips moving for seconds), a held smile, a quick
  head turn, a light change.

Frames are made one at a time (a generator), so a long clip costs no memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from epir_core.preprocess.synthetic import warp_image
from realtime.demo_clip import backdrop

# Expression -> [(landmark indices of a bump's centre, unit displacement (dx, dy)), ...]
EXPRESSIONS = {
    "brow raise": [((70, 63, 105, 66, 107), (0.0, -1.0)), ((300, 293, 334, 296, 336), (0.0, -1.0))],
    "frown": [((107, 66, 55), (0.8, 0.6)), ((336, 296, 285), (-0.8, 0.6))],
    "smile": [((61, 76, 62), (-0.8, -0.6)), ((291, 306, 292), (0.8, -0.6))],
    "lip press": [((17, 84, 314), (0.0, -1.0))],
    "blink": [((159, 158, 160), (0.0, 1.0)), ((386, 385, 387), (0.0, 1.0))],
    "talk": [((17, 84, 314, 200), (0.0, 1.0)), ((0, 37, 267), (0.0, -0.4))],
}
EXPRESSIONS["held smile"] = EXPRESSIONS["smile"]  # the same motion, held for seconds: not a micro-expression
MICRO = ("brow raise", "frown", "smile", "lip press")
REFERENCE_FACE_PX = 260  # amplitudes are pixels on a face this wide
SIGMA = {"blink": 0.035}  # bump spread, fraction of the face; 0.07 otherwise


@dataclass(frozen=True)
class Motion:
    """One expression in a clip: a profile in time (seconds) of strength 0..1 times amplitude_px."""

    kind: str
    start_s: float  # onset
    rise_s: float  # onset -> apex
    hold_s: float  # at the apex
    fall_s: float  # apex -> offset
    amplitude_px: float  # pixels on a face of REFERENCE_FACE_PX; more on a larger face
    cycles_hz: float = 0.0  # talking: the strength oscillates at this rate while held
    rest: float = 0.0  # the strength it falls to and keeps: real faces often come back only part of the way

    def strength(self, t: float) -> float:
        u = t - self.start_s
        if u <= 0:
            return 0.0
        if u < self.rise_s:
            s = math.sin(0.5 * math.pi * u / self.rise_s) ** 2
        elif u < self.rise_s + self.hold_s:
            s = 1.0
        elif u < self.rise_s + self.hold_s + self.fall_s:
            falling = math.cos(0.5 * math.pi * (u - self.rise_s - self.hold_s) / self.fall_s) ** 2
            s = self.rest + (1 - self.rest) * falling
        else:
            s = self.rest
        if self.cycles_hz:
            s *= 0.5 * (1 - math.cos(2 * math.pi * self.cycles_hz * u))
        return s

    @property
    def apex_s(self) -> float:
        return self.start_s + self.rise_s

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + self.fall_s


@dataclass(frozen=True)
class Scenario:
    name: str
    face: np.ndarray = field(repr=False)  # BGR face image
    landmarks: np.ndarray = field(repr=False)  # 468 x 2 in the face image
    fps: float
    seconds: float
    motions: tuple[Motion, ...]
    face_px: int = REFERENCE_FACE_PX
    frame_px: tuple[int, int] = (640, 480)
    sway_px: float = 6.0  # head sway amplitude (shift), frame pixels
    sway_deg: float = 1.5  # head roll amplitude
    turns: tuple[float, ...] = ()  # times (s) of quick head turns (0.4 s, 12 px and 6 degrees)
    light_changes: tuple[float, ...] = ()  # times (s) of a 15 % brightness step over 0.3 s
    noise: float = 2.0  # sensor noise, grey levels
    seed: int = 0

    def truth(self) -> list[tuple[int, int, int, str, float]]:
        """(onset, apex, offset, kind, amplitude) frames of each micro-expression."""
        f = self.fps
        return [(math.floor(m.start_s * f) + 1, round(m.apex_s * f), math.ceil(m.end_s * f) - 1, m.kind, m.amplitude_px)
                for m in self.motions if m.kind in MICRO]

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)


def enlarged(scenario: Scenario, factor: float) -> Scenario:
    """The same clip as a camera with `factor` times the resolution gives it: face, frame, sway and
    expressions all `factor` times as many pixels."""
    width, height = scenario.frame_px
    return replace(scenario, name=f"{scenario.name}-x{factor:g}", face_px=round(scenario.face_px * factor),
                   frame_px=(round(width * factor), round(height * factor)), sway_px=scenario.sway_px * factor)


PAD = 0.2  # the databases' crops end at the chin: the face is pasted with a smeared border this wide


def _padded(face: np.ndarray, px: int) -> np.ndarray:
    """The face resized to px (its own crop) inside a replicated border of PAD per side, float32."""
    border = round(PAD * px)
    resized = cv2.resize(face, (px, px), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(resized, border, border, border, border, cv2.BORDER_REPLICATE).astype(np.float32)


def _fields(scenario: Scenario) -> dict[str, np.ndarray]:
    """Unit displacement field of each expression kind, on the padded face (side x side x 2)."""
    px, border = scenario.face_px, round(PAD * scenario.face_px)
    side = px + 2 * border
    scale = px / np.array(scenario.face.shape[1::-1], dtype=np.float64)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    out = {}
    for kind in {m.kind for m in scenario.motions}:
        total = np.zeros((side, side, 2), np.float32)
        sigma = SIGMA.get(kind, 0.07) * px
        for points, (dx, dy) in EXPRESSIONS[kind]:
            cx, cy = scenario.landmarks[list(points)].mean(axis=0) * scale + border
            bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
            total += np.dstack([dx * bump, dy * bump])
        out[kind] = total
    return out


def render(scenario: Scenario) -> Iterator[np.ndarray]:
    """The scenario's frames, BGR uint8 H x W x 3, one at a time."""
    rng = np.random.default_rng(scenario.seed)
    px, (width, height) = scenario.face_px, scenario.frame_px
    pixels = px / REFERENCE_FACE_PX  # expression amplitudes are given on a face of REFERENCE_FACE_PX
    face = _padded(scenario.face, px)
    fields = _fields(scenario)
    background = backdrop(width, height, rng)
    phase = rng.uniform(0, 2 * math.pi, 3)
    for i in range(scenario.frames):
        t = i / scenario.fps
        displacement = sum((m.strength(t) * m.amplitude_px * pixels * fields[m.kind] for m in scenario.motions),
                           np.zeros(face.shape[:2] + (2,), np.float32))
        moved = warp_image(face, displacement) if np.abs(displacement).max() > 1e-3 else face
        turn = sum(_pulse(t - s, 0.4) for s in scenario.turns)
        shift = scenario.sway_px * np.array([math.sin(2 * math.pi * t / 4.1 + phase[0]),
                                             math.sin(2 * math.pi * t / 5.3 + phase[1])]) + (12 * turn, 0)
        angle = scenario.sway_deg * math.sin(2 * math.pi * t / 6.7 + phase[2]) + 6 * turn
        side = face.shape[0]
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        matrix[:, 2] += np.array([(width - side) / 2, (height - side) / 2]) + shift
        frame = background.copy()
        cv2.warpAffine(moved, matrix, (width, height), dst=frame, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
        gain = 1.0 + 0.05 * math.sin(2 * math.pi * t / 9.0) + sum(0.15 * _step(t - s, 0.3) for s in scenario.light_changes)
        frame = frame * gain + rng.normal(0, scenario.noise, frame.shape).astype(np.float32)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _pulse(u: float, duration: float) -> float:
    """0 -> 1 -> 0 over `duration` seconds (a quick turn and back)."""
    return math.sin(math.pi * u / duration) ** 2 if 0 < u < duration else 0.0


def _step(u: float, duration: float) -> float:
    return 0.0 if u <= 0 else 1.0 if u >= duration else u / duration


def micro_clip(name: str, face: np.ndarray, landmarks: np.ndarray, fps: float, amplitudes: tuple[float, ...],
               seed: int, spacing_s: float = 2.2, lead_s: float = 2.5, held: bool = False,
               durations: Sequence[tuple[float, float]] = ()) -> Scenario:
    """One micro-expression per amplitude, kinds in turn, every spacing_s seconds, with blinks between.
    held: each stays at its apex from 0.1 s to what leaves a fall of 0.1 s within 0.45 s. Real ones
    do: the flow of CASME II sub01 EP19_06f from its first frame matches the composite's as well at
    frame 12 as at frame 45 (0.17 s later at 200 fps). durations: (rise, fall) seconds to draw each
    expression's from, as a database's coding sheet gives them (onset to apex, apex to offset)."""
    rng = np.random.default_rng(seed)
    motions = []
    for n, amplitude in enumerate(amplitudes):
        start = lead_s + n * spacing_s + rng.uniform(0, 0.3)
        if durations:  # the sheet's apex to offset holds any hold
            (rise, fall), hold = durations[rng.integers(len(durations))], 0.0
        else:
            rise = rng.uniform(0.07, 0.15)
            hold = rng.uniform(0.1, 0.35 - rise) if held else 0.0
            fall = rng.uniform(0.1, min(0.25, 0.45 - rise - hold))
        motions.append(Motion(MICRO[(n + seed) % len(MICRO)], start, rise, hold, fall, float(amplitude)))
        motions.append(Motion("blink", start + spacing_s / 2, 0.07, 0.03, 0.12, 4.0))
    seconds = lead_s + len(amplitudes) * spacing_s + 0.5
    return Scenario(name, face, landmarks, fps, seconds, tuple(motions), seed=seed)


def distractor_clip(name: str, face: np.ndarray, landmarks: np.ndarray, fps: float, seed: int) -> Scenario:
    """20 s without a micro-expression: talking, a held smile, a head turn, blinks, a light change."""
    motions = (
        Motion("talk", 2.0, 0.2, 3.0, 0.2, 4.0, cycles_hz=4.0),
        Motion("held smile", 7.0, 0.25, 3.0, 0.6, 5.0),
        Motion("blink", 5.5, 0.07, 0.03, 0.12, 4.0),
        Motion("blink", 12.5, 0.07, 0.03, 0.12, 4.0),
        Motion("talk", 15.0, 0.2, 2.5, 0.2, 3.0, cycles_hz=3.0),
        Motion("blink", 18.5, 0.07, 0.03, 0.12, 4.0),
    )
    return Scenario(name, face, landmarks, fps, 20.0, motions, turns=(11.0,), light_changes=(13.5,), seed=seed)
