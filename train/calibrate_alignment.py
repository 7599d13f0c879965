"""Measure the alignment template: where the composite's face crops put the face-mesh landmarks.

    python -m train.calibrate_alignment            # writes epir_core/preprocess/composite_template.json

The composite's apex faces (apex_face_224/) are the databases' own crops resized to 224 x 224. For
CASME II that crop is the crop of the flows (pixel-aligned with CASME II's cropped release), and
SMIC's faces sit in the same place. SAMM's apex faces are framed looser than its flows, so SAMM
is left out and only reported, with the one real SAMM onset frame cut as its flows were
(real_frames/samm_006_1_2/onset.png).

The landmarks are found on each face as fractions of its width and height. The databases
registered their faces on the eyes: those landmarks vary least from face to face (spread 0.012
of the crop, against 0.03 for chin and face outline). The template keeps the POINTS landmarks of
least spread, at their mean position. 40 was chosen among 20, 40, 80 and 160 on the one raw
CASME II clip (README, input recipe); 80 did as well.
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from epir_core.errors import FaceTooSmallError, NoFaceError
from epir_core.preprocess.align import TEMPLATE_PATH
from epir_core.preprocess.face import FaceLocator
from train.data.composite import COMPOSITE_DIR, composite_rows
from epir_core.exit_codes import ExitCode
from epir_core.paths import data_root as default_data_root

CALIBRATION_SETS = ("casme2", "smic")
POINTS = 40
FRAMING = {"outer eye corners": (33, 263), "forehead": 10, "chin": 152}

app = typer.Typer(add_completion=False, help=__doc__)


def landmark_fractions(locator: FaceLocator, image: np.ndarray) -> np.ndarray:
    """468 x 2 landmarks of the face filling `image`, as fractions of its width and height."""
    face = locator.locate(image)
    h, w = image.shape[:2]
    return face.landmarks / (w, h)


@app.command()
def main(every: int = typer.Option(1, help="use every n-th face (1 = all)"),
         dry_run: bool = typer.Option(False, help="print the figures, write nothing")) -> None:
    """Example: python -m train.calibrate_alignment --every 3 --dry-run"""
    err = Console(stderr=True)
    root = default_data_root()
    composite = root / COMPOSITE_DIR
    try:
        rows = composite_rows(root)[::every]
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error:[/red] {e} (set $EPIR_DATA)", highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None
    per_set: dict[str, list[np.ndarray]] = {}
    skipped = 0
    with FaceLocator() as locator, Progress(console=err) as progress:
        for row in progress.track(rows, description="faces"):
            dataset, image_name = row["dataset"], row["imagename"]
            image = cv2.imread(str(composite / "apex_face_224" / image_name))
            if image is None:
                skipped += 1
                continue
            try:
                per_set.setdefault(dataset, []).append(landmark_fractions(locator, image))
            except (NoFaceError, FaceTooSmallError):
                skipped += 1
        samm_crop = cv2.imread(str(root / "real_frames" / "samm_006_1_2" / "onset.png"))
        samm = landmark_fractions(locator, samm_crop) if samm_crop is not None else None
    calibration = np.concatenate([per_set[name] for name in CALIBRATION_SETS])  # faces x 468 x 2
    spread = np.linalg.norm(calibration.std(axis=0), axis=1)  # 468
    points = np.sort(np.argsort(spread)[:POINTS])
    mean_face = calibration.mean(axis=0)
    template = mean_face[points]
    report = {name: _summary(np.mean(faces, axis=0), mean_face, points) | {"faces": len(faces)}
              for name, faces in per_set.items()}
    if samm is not None:
        report["samm real flow crop (006_1_2 onset)"] = _summary(samm, mean_face, points) | {"faces": 1}
    report["template points"] = {"count": POINTS, "spread": round(float(spread[points].mean()), 4),
                                 "spread of all 468": round(float(spread.mean()), 4)}
    report["skipped"] = skipped
    json.dump(report, sys.stdout, indent=2)
    print()
    if not dry_run:
        TEMPLATE_PATH.write_text(json.dumps({
            "how": "python -m train.calibrate_alignment (mean face-mesh landmarks of the composite's "
                   f"{' + '.join(CALIBRATION_SETS)} apex faces, fractions of the crop)",
            "faces": len(calibration),
            "points": points.tolist(),
            "template": np.round(template, 4).tolist(),
            "mean_face": np.round(mean_face, 4).tolist(),  # all 468, for naming regions of the input
        }, indent=1) + "\n")
        err.print(f"wrote {TEMPLATE_PATH}", highlight=False)


def _summary(face: np.ndarray, mean_face: np.ndarray, points: np.ndarray) -> dict:
    """Framing of one (mean) face: eye corners x, forehead and chin y, distance to the template."""
    (right, left), forehead, chin = (face[i] for i in FRAMING["outer eye corners"]), face[10], face[152]
    return {
        "outer eye corners x": [round(float(right[0]), 3), round(float(left[0]), 3)],
        "forehead y": round(float(forehead[1]), 3),
        "chin y": round(float(chin[1]), 3),
        "distance to template (crop fraction)": round(float(np.linalg.norm(face[points] - mean_face[points], axis=1).mean()), 4),
    }


if __name__ == "__main__":
    app()
