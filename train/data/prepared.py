"""Read the cache written by `python -m train.prepare` as a SampleSet."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from epir_core.preprocess.recipe import InputRecipe
from train.data.sampleset import SampleSet

PROTOCOLS = ("cde", "sde")


def load_prepared(directory: Path, protocol: str) -> SampleSet:
    """The samples labelled under `protocol` (cde | sde); samples excluded under it are left out."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    index = directory / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{directory} has no index.csv: not a folder written by train.prepare")
    with index.open() as f:
        rows = [r for r in csv.DictReader(f) if r[f"label_{protocol}"] != ""]
    if not rows:
        raise ValueError(f"{directory}: no sample is labelled under {protocol}")
    classes = json.loads((directory / "classes.json").read_text())[protocol]
    recipe = InputRecipe.from_dict(json.loads((directory / "recipe.json").read_text()))
    return SampleSet(
        inputs=np.stack([np.load(directory / r["file"]) for r in rows]).astype(np.float32),  # N x 3 x 28 x 28
        labels=np.array([int(r[f"label_{protocol}"]) for r in rows], dtype=np.int64),
        subjects=np.array([r["subject"] for r in rows]),
        datasets=np.array([r["dataset"] for r in rows]),
        sample_ids=np.array([r["sample"] for r in rows]),
        class_names=tuple(classes),
        recipe=recipe,
    )
