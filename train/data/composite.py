"""The MEGC 2019 composite (CDE protocol): 442 precomputed flow maps from SMIC, CASME II and SAMM."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from epir_core.preprocess.recipe import InputRecipe
from train.data.protocols import CDE_CLASSES
from train.data.sampleset import SampleSet

COMPOSITE_DIR = "megc2019_composite"


def composite_dir(root: Path) -> Path:
    """Accept either the data root that holds megc2019_composite/ or that folder itself."""
    root = Path(root)
    return root if (root / "samples.csv").exists() else root / COMPOSITE_DIR


def load_composite(root: Path) -> SampleSet:
    """Read samples.csv and flow_uvs_28/{sub}_{filename_o}.png into a SampleSet.

    Raises FileNotFoundError when the folder, the table or a flow image is missing, and ValueError
    when the table holds no samples or a bad row, so that callers can name the data option.
    """
    folder = composite_dir(root)
    rows = composite_rows(root)
    inputs = np.stack([read_flow(folder / "flow_uvs_28" / f"{r['sub']}_{r['filename_o']}.png") for r in rows])
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    if labels.min() < 0 or labels.max() >= len(CDE_CLASSES):
        raise ValueError(f"{folder / 'samples.csv'}: labels outside 0..{len(CDE_CLASSES) - 1}")
    return SampleSet(
        inputs=inputs,  # N x 3 x 28 x 28
        labels=labels,
        subjects=np.array([r["sub"] for r in rows]),
        datasets=np.array([r["dataset"] for r in rows]),
        sample_ids=np.array([f"{r['sub']}_{r['filename_o']}" for r in rows]),
        class_names=CDE_CLASSES,
        recipe=InputRecipe.composite(),
    )


def composite_rows(root: Path) -> list[dict]:
    """samples.csv as dicts (dataset, sub, filename_o, label, imagename, ...). Raises FileNotFoundError
    when it is missing and ValueError when it holds no samples."""
    table = composite_dir(root) / "samples.csv"
    if not table.exists():
        raise FileNotFoundError(f"no composite at {root} (expected {COMPOSITE_DIR}/samples.csv)")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{table} holds no samples")
    return rows


def read_flow(path: Path) -> np.ndarray:
    """28 x 28 RGB PNG (u, v, strain) -> 3 x 28 x 28 float32 in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"missing or unreadable flow image {path}")
    rgb = bgr[:, :, ::-1]  # OpenCV decodes to (strain, v, u); the project order is (u, v, strain)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
