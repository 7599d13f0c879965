"""Recipe fidelity on real frames: do live inputs look like the composite's flows of the same sample?

    python -m benchmarks.fidelity [--clips DIR --fps 200] [--json]

Per sample, against the composite's own flow of that sample (flow_uvs_28), the per-channel Pearson
correlation (u, v, strain) of the model input made with the shipped checkpoint's recipe:

- exact crops: the databases' own crops in ../shared/data/real_frames (README there), as the
  composite's flows were made from them;
- live path, per real clip (real_frames/'s raw CASME II clip, and every clip under --clips): face
  found and aligned on its first frame (the onset), against every later frame as the apex, exactly
  as epir-live makes an event's input;
- live path, spotted: epir-live itself on the clip (with a still lead-in, at the camera's rate):
  the onset and apex its spotter picks, and its label; then the same as other cameras would give the
  clip (grey, larger, smaller, darker, JPEG, 100 to 29 fps, the head moving), and its mirror image.

With the shipped model's label and confidence for each, the composite's label, and label stability
per clip: how often the label changes when the apex moves by one or two frames around the
best-matching apex.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from itertools import chain
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

import realtime
from benchmarks.spotting_bench import REAL_CLIP, padded
from epir_core.calibration import calibrated_probabilities
from epir_core.checkpoint import DEFAULT_MODEL_PATH
from epir_core.model.mirror import hflip
from epir_core.errors import CheckpointError, FaceTooSmallError, FlowError, NoFaceError
from epir_core.exit_codes import ExitCode
from epir_core.frame_files import frames_in_order
from epir_core.paths import data_root as default_data_root
from epir_core.preprocess import FaceLocator, InputRecipe, compute_flow, flow_to_input, make_model_input
from realtime.api import VIDEO_SUFFIXES
from realtime.session import Analyzer
from realtime.sources import read_video
from train.data.composite import COMPOSITE_DIR, composite_rows, read_flow
from train.data.protocols import CDE_CLASSES

REAL = Path("real_frames")
RAW_CLIP_SAMPLE = "sub01_EP02_01f"  # the composite's name of the clip's sample
STABILITY_SPAN = 5  # apex candidates: the best-matching frame and this many on each side
FPS = 200.0  # the CASME II camera's rate, at which epir-live reads the clip


def composite_input(data_root: Path, name: str) -> np.ndarray:
    """The composite's flow of a sample as model input: 3 x 28 x 28 in [0, 1], (u, v, strain)."""
    return read_flow(data_root / COMPOSITE_DIR / "flow_uvs_28" / f"{name}.png")


def correlation(x: np.ndarray, reference: np.ndarray) -> list[float]:
    return [round(float(np.corrcoef(x[c].ravel(), reference[c].ravel())[0, 1]), 3) for c in range(3)]


class Labeller:
    """A loaded checkpoint, eager on the CPU, run as epir-live runs it: input -> (label, calibrated
    confidence)."""

    def __init__(self, ckpt):
        self.ckpt = ckpt
        self.predictor = ckpt.predictor

    def __call__(self, x: np.ndarray) -> tuple[str, float]:
        with torch.no_grad():
            logits = self.predictor(torch.from_numpy(x[None]))[0].double().numpy()
        probs = calibrated_probabilities(logits, self.ckpt.temperature)
        best = int(probs.argmax())
        return self.ckpt.class_names[best], round(float(probs[best]), 3)


def exact_crops(data_root: Path, recipe: InputRecipe, label, labels: dict[str, str]) -> list[dict]:
    """The databases' own crops (no face finding, no alignment): the flow and strain alone."""
    pairs = {
        "samm 006_1_2 (onset.png -> apex.png, 140x170)": (REAL / "samm_006_1_2" / "onset.png",
                                                          REAL / "samm_006_1_2" / "apex.png", "006_006_1_2"),
        "casme2 sub01 EP02_01f (tim10 001 -> 004, 280x340 resized)": (
            REAL / "casme2_sub01_EP02_01f" / "tim10" / "001.jpg", REAL / "casme2_sub01_EP02_01f" / "tim10" / "004.jpg",
            "sub01_EP02_01f"),
    }
    rows = []
    for name, (onset_path, apex_path, sample) in pairs.items():
        onset, apex = (cv2.imread(str(data_root / p), cv2.IMREAD_GRAYSCALE) for p in (onset_path, apex_path))
        if onset is None or apex is None:
            rows.append({"sample": name, "status": "missing"})
            continue
        size = (recipe.crop_width, recipe.crop_height)
        onset, apex = (cv2.resize(i, size, interpolation=cv2.INTER_AREA) for i in (onset, apex))
        x = flow_to_input(compute_flow(onset, apex, recipe.flow_params), recipe)
        rows.append({"sample": name, "corr_uvs": correlation(x, composite_input(data_root, sample)),
                     "label": label(x), "composite_label": labels[sample]})
    return rows


@dataclass(frozen=True)
class RealClip:
    """Real frames of one composite sample as its camera gave them, from the onset on."""

    name: str  # where the frames came from
    sample: str  # the composite's id of the sample (flow_uvs_28/<sample>.png)
    frames: list
    fps: float


def composite_labels(data_root: Path) -> dict[str, str]:
    """Composite sample id -> its CDE class name."""
    return {f"{r['sub']}_{r['filename_o']}": CDE_CLASSES[int(r["label"])] for r in composite_rows(data_root)}


def sample_of(path: Path, labels: dict[str, str]) -> str | None:
    """The composite sample a clip's path names, as the databases and the composite name clips:
    sub01/EP19_05f (CASME II), 006/006_1_2 (SAMM), s1/micro/negative/s1_ne_01 (SMIC-HS, whose
    subject the composite pads: s01_s01_ne_01), or sub01_EP19_05f, optionally after a database
    prefix (casme2_sub01_EP19_05f, as in real_frames/). None when it names none."""
    smic = re.fullmatch(r"s(\d+)_([a-z]+_\d+)", path.stem)
    smic_name = f"s{int(smic[1]):02d}_s{int(smic[1]):02d}_{smic[2]}" if smic else None
    for name in (f"{path.parent.name}_{path.stem}", path.stem, path.stem.split("_", 1)[-1], smic_name):
        if name in labels:
            return name
    return None


def shared_clip(data_root: Path) -> RealClip:
    """The raw CASME II clip of real_frames/ (no frames when missing or unreadable)."""
    return RealClip(str(REAL_CLIP), RAW_CLIP_SAMPLE, read_video(data_root / REAL_CLIP), FPS)


def clips_under(folder: Path, labels: dict[str, str], fps: float) -> Iterator[RealClip]:
    """Every frames folder and video file under `folder` whose path names a composite sample, read one
    at a time (a whole database does not fit in memory); one with a frame that cannot be read has no
    frames."""
    # os.walk follows links: a database is often linked in, not copied
    found = [Path(root) / name for root, dirs, files in os.walk(folder, followlinks=True)
             for name in dirs + [f for f in files if Path(f).suffix.lower() in VIDEO_SUFFIXES]]
    for path in sorted(found):
        sample = sample_of(path, labels)
        if sample is None:
            continue
        if path.is_dir():
            images = frames_in_order(path)
            if not images:
                continue  # a folder that holds the clip's folders, not its frames
            frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images]
            frames = frames if all(f is not None for f in frames) else []
        else:
            frames = read_video(path)
        yield RealClip(str(path.relative_to(folder)), sample, frames, fps)


def first_frame_onset(clip: RealClip, recipe: InputRecipe, label, locator: FaceLocator, reference: np.ndarray) -> dict:
    """The live path on a clip: its first frame as onset, each later frame as apex."""
    frames = clip.frames
    face = locator.locate(frames[0])
    rows = []
    for j in range(1, len(frames)):
        x = make_model_input(frames[0], frames[j], recipe, face)
        rows.append({"apex_frame": j, "corr_uvs": correlation(x, reference), "label": label(x)})
    best = max(rows, key=lambda r: r["corr_uvs"][0] + r["corr_uvs"][1])
    around = [r for r in rows if abs(r["apex_frame"] - best["apex_frame"]) <= STABILITY_SPAN]
    by_apex = {r["apex_frame"]: r["label"][0] for r in around}

    def change_rate(step: int) -> float:
        pairs = [(a, a + step) for a in by_apex if a + step in by_apex]
        return round(sum(by_apex[a] != by_apex[b] for a, b in pairs) / len(pairs), 3) if pairs else 0.0

    return {"best": best, "frames": rows,
            "label_change_rate": {"1 frame": change_rate(1), "2 frames": change_rate(2)},
            "labels_around_best": [by_apex[a] for a in sorted(by_apex)]}


def moving_head(frames: list[np.ndarray], start: int, length: int, step: tuple[int, int]) -> list[np.ndarray]:
    """frames with the head moved `step` whole pixels (right, down) per frame from `start` for `length`
    frames, then held there: a head moving while the expression plays, without resampling."""
    moved = []
    for i, frame in enumerate(frames):
        n = min(max(i - start, 0), length)
        shift = np.float32([[1, 0, step[0] * n], [0, 1, step[1] * n]])
        moved.append(cv2.warpAffine(frame, shift, frame.shape[1::-1], flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_REPLICATE))
    return moved


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _scaled(factor: float):
    interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    return lambda frame: cv2.resize(frame, None, fx=factor, fy=factor, interpolation=interpolation)


MIRRORED = "mirror image"
HEAD_MOVING = "head moving 1 px right and down per frame"  # moving_head, after any of CAMERAS

# A real clip as other cameras would give it: name -> (per-frame change, keep every n-th frame); the
# names hold for a clip of any rate and size (each row gives its own fps).
# Colour, resolution, exposure, compression and frame rates down to a webcam's; and the clip's mirror
# image, which no camera gives (OpenCV delivers frames unmirrored) but which shows whether a label
# rests on which side of the face moved (a model that predicts from an input and its mirror gives both one label).
CAMERAS = {
    "as recorded": (None, 1),
    "grey": (lambda f: cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), 1),
    "2x larger": (_scaled(2.0), 1),
    "0.6x smaller": (_scaled(0.6), 1),
    "darker (60 %)": (lambda f: (f * 0.6).astype(np.uint8), 1),
    "JPEG quality 60": (lambda f: _jpeg(f, 60), 1),
    MIRRORED: (lambda f: np.ascontiguousarray(f[:, ::-1]), 1),
    "every 2nd frame": (None, 2),
    "every 3rd frame": (None, 3),
    "every 5th frame": (None, 5),
    "every 7th frame": (None, 7),
}


def _unmirrored(x: np.ndarray) -> np.ndarray:
    """A mirror image's model input as the camera's own (hflip: flipped back, u negated)."""
    return hflip(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def live_events(clip: RealClip, analyzer: Analyzer, locator: FaceLocator, reference: np.ndarray) -> list[dict]:
    """epir-live itself (realtime.stream, the analyzer's model) on the clip padded with a still lead-in
    (spotting_bench.padded), as recorded, as the other CAMERAS would give it, and with the head moving
    (HEAD_MOVING): the event inside the clip, its label, and how its input (the spotter's onset and
    apex, made again as epir-live makes it) correlates with the composite's flow."""
    padded_frames, lead = padded(clip.frames, clip.fps)
    length = len(clip.frames)
    recipe = analyzer.checkpoint.recipe
    rows = []
    for name, (change, every) in (CAMERAS | {HEAD_MOVING: (None, 1)}).items():
        frames = moving_head(padded_frames, lead, length, (1, 1)) if name == HEAD_MOVING else padded_frames
        frames = [change(f) if change else f for f in frames[::every]]
        events = list(realtime.stream(frames, fps=clip.fps / every, analyzer=analyzer))
        inside = [e for e in events if lead <= e.apex_frame * every < lead + length]
        row = {"camera": name, "fps": round(clip.fps / every, 1), "events": len(events)}
        if not inside:
            rows.append(row | {"status": "no event inside the clip"})
            continue
        event = inside[0]
        onset, apex = frames[event.onset_frame], frames[event.apex_frame]
        x = make_model_input(onset, apex, recipe, locator.locate(onset))
        rows.append(row | {"status": "ok", "onset_frame": event.onset_frame * every - lead,
                           "apex_frame": event.apex_frame * every - lead,
                           "corr_uvs": correlation(_unmirrored(x) if name == MIRRORED else x, reference),
                           "label": [event.label, round(event.confidence, 3)]})
    return rows


def clip_report(data_root: Path, clip: RealClip, composite_label: str, analyzer: Analyzer, label: Labeller,
                locator: FaceLocator) -> dict:
    """One clip's rows; a clip that cannot be measured (too few frames, no face, no flow) is a row
    that says why, and the report goes on."""
    row = {"clip": clip.name, "sample": clip.sample, "fps": clip.fps, "frames": len(clip.frames)}
    if len(clip.frames) < 2:
        return row | {"status": "missing, unreadable or a single frame: not measured"}
    reference = composite_input(data_root, clip.sample)
    try:
        return row | {"status": "ok", "composite_label": composite_label,
                      "first_frame_onset": first_frame_onset(clip, analyzer.checkpoint.recipe, label, locator,
                                                             reference),
                      "live_events": live_events(clip, analyzer, locator, reference)}
    except (NoFaceError, FaceTooSmallError, FlowError) as e:
        return row | {"status": f"not measured: {e}"}


def report(data_root: Path, model: Path, clips: Path | None = None, fps: float = FPS,
           progress: Callable[[str], None] = lambda _: None) -> dict:
    """The whole report: exact crops, then every real clip (real_frames/'s raw clip, and those under
    `clips` read at `fps`)."""
    analyzer = Analyzer(model, explain=False)
    label = Labeller(analyzer.checkpoint)
    recipe = analyzer.checkpoint.recipe
    labels = composite_labels(data_root)
    found = chain([shared_clip(data_root)], clips_under(clips, labels, fps) if clips else [])
    rows = []
    with FaceLocator() as locator:
        exact = exact_crops(data_root, recipe, label, labels)
        for clip in found:
            progress(f"{clip.name}: {len(clip.frames)} frames of {clip.sample}")
            rows.append(clip_report(data_root, clip, labels[clip.sample], analyzer, label, locator))
    return {"recipe": recipe.to_dict() | {"template": f"{len(recipe.template)} points"},
            "model": str(model), "exact_crops": exact, "clips": rows}


def _uvs(row: dict) -> list[str]:
    return [str(c) for c in row["corr_uvs"]]


def _label(row: dict) -> str:
    return f"{row['label'][0]} {row['label'][1]}"


def print_report(result: dict, console: Console) -> None:
    table = Table(title="Input fidelity against the composite's flow (Pearson r per channel)")
    for column in ("sample", "path", "u", "v", "strain", "label", "composite"):
        table.add_column(column)
    for row in result["exact_crops"]:
        if "corr_uvs" in row:
            table.add_row(row["sample"], "exact crops", *_uvs(row), _label(row), row["composite_label"])
        else:
            table.add_row(row["sample"], "exact crops", "", "", "", row["status"], "")
    clips = [c for c in result["clips"] if c["status"] == "ok"]
    for clip in clips:
        best = clip["first_frame_onset"]["best"]
        table.add_row(f"{clip['clip']}: first frame -> frame {best['apex_frame']} (best)", "live path",
                      *_uvs(best), _label(best), clip["composite_label"])
        spotted = clip["live_events"][0]
        if spotted["status"] == "ok":
            table.add_row(f"{clip['clip']}: epir-live's event (onset {spotted['onset_frame']}, apex "
                          f"{spotted['apex_frame']})", "live path, spotted", *_uvs(spotted), _label(spotted),
                          clip["composite_label"])
    console.print(table)
    for clip in clips:
        cameras = Table(title=f"epir-live on {clip['clip']} as other cameras would give it "
                              f"(composite label: {clip['composite_label']})")
        for column in ("camera", "fps", "events", "onset", "apex", "u", "v", "strain", "label"):
            cameras.add_column(column)
        for row in clip["live_events"]:
            if row["status"] == "ok":
                cameras.add_row(row["camera"], str(row["fps"]), str(row["events"]), str(row["onset_frame"]),
                                str(row["apex_frame"]), *_uvs(row), _label(row))
            else:
                cameras.add_row(row["camera"], str(row["fps"]), str(row["events"]), "", "", "", "", "", row["status"])
        console.print(cameras)
        stability = clip["first_frame_onset"]
        console.print(f"{clip['clip']}: label changes when the apex moves by 1 frame: "
                      f"{stability['label_change_rate']['1 frame']}, by 2 frames: "
                      f"{stability['label_change_rate']['2 frames']}; labels around the best apex: "
                      f"{' '.join(stability['labels_around_best'])}", highlight=False)
    for clip in result["clips"]:
        if clip["status"] != "ok":
            console.print(f"{clip['clip']}: {clip['status']}", highlight=False)


def main(
    data: Path = typer.Option(None, "--data-root", help="Where real_frames/ and megc2019_composite/ are "
                              "(default: $EPIR_DATA, else ../shared/data)."),
    clips: Path = typer.Option(None, "--clips", help="Also every frames folder or video under this folder that "
                               "names a composite sample (sub01/EP19_05f/img*.jpg, 006/006_1_2/, "
                               "s1/micro/negative/s1_ne_01/, sub01_EP19_05f.avi), its frames from the onset on."),
    fps: float = typer.Option(FPS, "--fps", min=1.0,
                              help="Frame rate of the --clips (CASME II and SAMM: 200, SMIC-HS: 100)."),
    model: Path = typer.Option(DEFAULT_MODEL_PATH, help="Checkpoint whose recipe and labels are used."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON on stdout."),
) -> None:
    """Per-channel correlation of live inputs with the composite's flows, and the model's labels.

    Examples:
      python -m benchmarks.fidelity --json > fidelity.json
      python -m benchmarks.fidelity --clips CASME2_RAW/ --fps 200

    Exit codes: 0 done, 2 no real_frames or composite under the data root, or no --clips folder;
    4 the model is missing or not an EPIR checkpoint.
    """
    console = Console(stderr=True)
    data_root = data or default_data_root()
    if not (data_root / REAL).is_dir() or not (data_root / COMPOSITE_DIR / "samples.csv").is_file():
        console.print(f"error: no real_frames and composite under {data_root} (set --data-root or $EPIR_DATA)",
                      highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    if clips is not None and not clips.is_dir():
        console.print(f"error: --clips {clips} is not a folder", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    try:
        with console.status("fidelity") as status:
            result = report(data_root, model, clips, fps, progress=lambda text: status.update(f"fidelity: {text}"))
    except CheckpointError as e:
        console.print(f"error: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.MODEL) from None
    print_report(result, console)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
