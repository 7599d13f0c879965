"""Recipe fidelity on real frames: do live inputs look like the composite's flows of the same sample?

    python -m benchmarks.fidelity [--json]

On ../shared/data/real_frames (README there), per sample, against the composite's own flow of that
sample (flow_uvs_28), the per-channel Pearson correlation (u, v, strain) of the model input made
with the shipped checkpoint's recipe:

- exact crops: the databases' own crops, as the composite's flows were made from them;
- live path: the raw CASME II clip, face found and aligned on its first frame (the onset), against
  every later frame as the apex, exactly as epir-live makes an event's input;
- live path, spotted: the onset and apex the live spotter picks on that clip (with a still lead-in,
  at 200 fps), the pair epir-live labels.

With the shipped model's label and confidence for each, and label stability on the raw clip: how
often the label changes when the apex moves by one or two frames around the best-matching apex.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.spotting_bench import padded_real_clip, spot_frames
from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
from epir_core.preprocess import FaceLocator, InputRecipe, compute_flow, flow_to_input, make_model_input
from realtime.sources import read_video
from train.data.composite import COMPOSITE_DIR, read_flow
from epir_core.exit_codes import ExitCode
from epir_core.paths import data_root as default_data_root

REAL = Path("real_frames")
RAW_CLIP = REAL / "casme2_sub01_EP02_01f" / "raw_44f.avi"
RAW_CLIP_SAMPLE = "sub01_EP02_01f"  # the composite's name of the clip's sample
STABILITY_SPAN = 5  # apex candidates: the best-matching frame and this many on each side
FPS = 200.0  # the CASME II camera's rate, at which epir-live reads the clip


def composite_input(data_root: Path, name: str) -> np.ndarray:
    """The composite's flow of a sample as model input: 3 x 28 x 28 in [0, 1], (u, v, strain)."""
    return read_flow(data_root / COMPOSITE_DIR / "flow_uvs_28" / f"{name}.png")


def correlation(x: np.ndarray, reference: np.ndarray) -> list[float]:
    return [round(float(np.corrcoef(x[c].ravel(), reference[c].ravel())[0, 1]), 3) for c in range(3)]


class Labeller:
    """The shipped checkpoint, eager on the CPU: input -> (label, confidence)."""

    def __init__(self, path: Path):
        import torch

        self.torch, self.ckpt = torch, load_checkpoint(path)

    def __call__(self, x: np.ndarray) -> tuple[str, float]:
        with self.torch.no_grad():
            probs = self.torch.softmax(self.ckpt.model(self.torch.from_numpy(x[None])), dim=-1)[0]
        best = int(probs.argmax())
        return self.ckpt.class_names[best], round(float(probs[best]), 3)


def exact_crops(data_root: Path, recipe: InputRecipe, label) -> list[dict]:
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
                     "label": label(x)})
    return rows


def raw_clip(data_root: Path, recipe: InputRecipe, label, locator: FaceLocator) -> dict:
    """The live path on the raw clip: first frame as onset, each later frame as apex."""
    frames = read_video(data_root / RAW_CLIP)
    if not frames:
        return {"status": f"{data_root / RAW_CLIP} is missing or unreadable"}
    reference = composite_input(data_root, RAW_CLIP_SAMPLE)
    face = locator.locate(frames[0])
    rows = []
    for j in range(1, len(frames)):
        x = make_model_input(frames[0], frames[j], recipe, face)
        rows.append({"apex_frame": j, "corr_uvs": correlation(x, reference), "label": label(x)})
    best = max(rows, key=lambda r: r["corr_uvs"][0] + r["corr_uvs"][1])
    around = [r for r in rows if abs(r["apex_frame"] - best["apex_frame"]) <= STABILITY_SPAN]
    labels = {r["apex_frame"]: r["label"][0] for r in around}

    def change_rate(step: int) -> float:
        pairs = [(a, a + step) for a in labels if a + step in labels]
        return round(sum(labels[a] != labels[b] for a, b in pairs) / len(pairs), 3)

    return {"status": "ok", "composite_label": "positive", "best": best, "frames": rows,
            "label_change_rate": {"1 frame": change_rate(1), "2 frames": change_rate(2)},
            "labels_around_best": [labels[a] for a in sorted(labels)]}


def spotted_event(data_root: Path, recipe: InputRecipe, label, locator: FaceLocator) -> dict:
    """The pair epir-live itself labels: the live spotter's onset and apex on the raw clip, padded
    with a still lead-in as a camera would give it (spotting_bench.padded_real_clip, 200 fps)."""
    clip, lead, length = padded_real_clip(data_root, FPS)
    if not clip:
        return {"status": f"{data_root / RAW_CLIP} is missing or unreadable"}
    spots = [s for s in spot_frames(clip, FPS, locator)[0] if lead <= s.apex < lead + length]
    if not spots:
        return {"status": "the spotter found no event in the clip"}
    onset, apex = spots[0].onset, spots[0].apex
    x = make_model_input(clip[onset], clip[apex], recipe, locator.locate(clip[onset]))
    return {"status": "ok", "onset_frame": onset - lead, "apex_frame": apex - lead,
            "corr_uvs": correlation(x, composite_input(data_root, RAW_CLIP_SAMPLE)), "label": label(x)}


def report(data_root: Path, model: Path) -> dict:
    label = Labeller(model)
    recipe = label.ckpt.recipe
    with FaceLocator() as locator:
        return {"recipe": recipe.to_dict() | {"template": f"{len(recipe.template)} points"},
                "model": str(model), "exact_crops": exact_crops(data_root, recipe, label),
                "raw_clip": raw_clip(data_root, recipe, label, locator),
                "spotted_event": spotted_event(data_root, recipe, label, locator)}


def main(
    data: Path = typer.Option(None, "--data-root", help="Where real_frames/ and megc2019_composite/ are "
                              "[default: $EPIR_DATA, else ../shared/data]."),
    model: Path = typer.Option(DEFAULT_MODEL_PATH, help="Checkpoint whose recipe and labels are used."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON on stdout."),
) -> None:
    """Per-channel correlation of live inputs with the composite's flows, and the model's labels.

    Example: python -m benchmarks.fidelity --json > fidelity.json
    """
    console = Console(stderr=True)
    data_root = data or default_data_root()
    if not (data_root / REAL).is_dir():
        console.print(f"error: no real_frames under {data_root} (set --data-root or $EPIR_DATA)", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    result = report(data_root, model)
    table = Table(title="Input fidelity against the composite's flow (Pearson r per channel)")
    for column in ("sample", "path", "u", "v", "strain", "label"):
        table.add_column(column)
    for row in result["exact_crops"]:
        if "corr_uvs" in row:
            table.add_row(row["sample"], "exact crops", *map(str, row["corr_uvs"]), f"{row['label'][0]} {row['label'][1]}")
    raw = result["raw_clip"]
    if raw["status"] == "ok":
        best = raw["best"]
        table.add_row(f"casme2 sub01 EP02_01f raw clip, apex frame {best['apex_frame']} (best)", "live path",
                      *map(str, best["corr_uvs"]), f"{best['label'][0]} {best['label'][1]}")
    spotted = result["spotted_event"]
    if spotted["status"] == "ok":
        table.add_row(f"casme2 sub01 EP02_01f raw clip, epir-live's event (onset {spotted['onset_frame']}, "
                      f"apex {spotted['apex_frame']})", "live path, spotted", *map(str, spotted["corr_uvs"]),
                      f"{spotted['label'][0]} {spotted['label'][1]}")
    console.print(table)
    if spotted["status"] != "ok":
        console.print(f"spotted event: {spotted['status']}", highlight=False)
    if raw["status"] == "ok":
        console.print(f"raw clip: label changes when the apex moves by 1 frame: {raw['label_change_rate']['1 frame']}, "
                      f"by 2 frames: {raw['label_change_rate']['2 frames']}; labels around the best apex: "
                      f"{' '.join(raw['labels_around_best'])} (composite label: {raw['composite_label']})",
                      highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
