"""python -m train.prepare: a raw micro-expression database -> cached model inputs.

Writes OUT/inputs/<sample>.npy (float32 3x28x28, channels u, v, strain), OUT/index.csv,
OUT/recipe.json, OUT/classes.json and OUT/skipped.csv (sample, reason). Inputs already in OUT are
kept, so an interrupted run picks up where it stopped. Exit codes (the project's table, README):
0 done (skipped samples are listed, not fatal), 2 bad option or not the database's layout, 6 --out
holds inputs made with another recipe, 130 interrupted (partial results kept).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from enum import Enum
from pathlib import Path

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from epir_core.errors import EPIRError
from epir_core.exit_codes import ExitCode
from epir_core.files import atomic_path
from epir_core.preprocess import FaceLocator, InputRecipe, crop_pair, make_model_input, max_flow_apex
from train.data.casme2 import read_casme2
from train.data.casme3 import read_casme3
from train.data.protocols import CDE_CLASSES, SDE_CLASSES
from train.data.raw import LayoutError, RawSample
from train.data.samm import read_samm
from train.data.smic import read_smic

INDEX_COLUMNS = ("dataset", "subject", "sample", "emotion", "label_cde", "label_sde", "file", "apex_frame",
                 "apex_source")
READERS = {"casme2": read_casme2, "samm": read_samm, "smic": read_smic, "casme3": read_casme3}
RECIPES = {"composite": InputRecipe.composite, "paper": InputRecipe.paper}


class Dataset(str, Enum):
    casme2 = "casme2"
    samm = "samm"
    smic = "smic"
    casme3 = "casme3"


class BadOption(Exception):
    """One line for stderr, naming the option at fault; exit code 2."""


class OutFolderTaken(Exception):
    """--out holds inputs made with another recipe; exit code 6."""


def _load_recipe(name: str) -> InputRecipe:
    if name in RECIPES:
        return RECIPES[name]()
    path = Path(name)
    if not path.is_file():
        raise BadOption(f"--recipe: {name!r} is neither {' nor '.join(RECIPES)} nor a recipe .json file")
    try:
        return InputRecipe.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise BadOption(f"--recipe: {path} is not a valid recipe: {e}") from e


def _prepare_out(out: Path, recipe: InputRecipe, dataset: str) -> None:
    """Create OUT, or check that an existing OUT was made with this recipe (inputs must not mix)."""
    recipe_file = out / "recipe.json"
    if recipe_file.exists():
        previous = json.loads(recipe_file.read_text())
        if previous != recipe.to_dict():
            raise OutFolderTaken(f"--out: {out} holds inputs made with another recipe; choose a new --out")
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(json.dumps(recipe.to_dict(), indent=1))
    classes = {"cde": list(CDE_CLASSES), "sde": list(SDE_CLASSES[dataset])}
    (out / "classes.json").write_text(json.dumps(classes, indent=1))


def _read(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path))
    if frame is None:
        raise EPIRError(f"cannot read image {path}")
    return frame


def _make_input(sample: RawSample, recipe: InputRecipe, locator: FaceLocator) -> tuple[np.ndarray, Path]:
    """The model input of one sample and the apex frame it used. Raises EPIRError (face, flow, files)."""
    onset = _read(sample.onset)
    face = locator.locate(onset)  # onset and apex are cut the same way, from the onset's face
    if sample.apex is not None:
        apex_path = sample.apex
    else:
        crops = [crop_pair(onset, _read(p), recipe, face)[1] for p in sample.frames]  # frames[0] is the onset
        apex_path = sample.frames[max_flow_apex(crops)]
    if apex_path == sample.onset:
        raise EPIRError("onset and apex are the same frame")
    return make_model_input(onset, _read(apex_path), recipe, face), apex_path


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _index_row(sample: RawSample, dataset: str, apex_path: Path, apex_source: str) -> dict:
    sde = SDE_CLASSES[dataset]
    return {
        "dataset": dataset, "subject": sample.subject, "sample": sample.sample, "emotion": sample.emotion,
        "label_cde": CDE_CLASSES.index(sample.label_cde) if sample.label_cde else "",
        "label_sde": sde.index(sample.label_sde) if sample.label_sde else "",
        "file": f"inputs/{sample.sample}.npy", "apex_frame": apex_path.name, "apex_source": apex_source,
    }


def run(dataset: str, root: Path, out: Path, recipe: InputRecipe, limit: int | None, console: Console) -> dict:
    """Prepare every sample; returns the summary. Index and skipped list are rewritten as it goes."""
    samples = READERS[dataset](root)[:limit]
    _prepare_out(out, recipe, dataset)
    old_rows = {}
    if (out / "index.csv").exists():
        with (out / "index.csv").open() as f:
            old_rows = {r["sample"]: r for r in csv.DictReader(f)}
    rows, skipped, counts = [], [], Counter()

    def flush() -> None:
        _write_csv(out / "index.csv", INDEX_COLUMNS, rows)
        _write_csv(out / "skipped.csv", ("sample", "reason"), skipped)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with FaceLocator() as locator, Progress(*columns, console=console) as progress:
        task = progress.add_task(f"preparing {dataset}", total=len(samples))
        try:
            for i, sample in enumerate(samples):
                progress.advance(task)
                if i % 25 == 0:
                    flush()
                target = out / "inputs" / f"{sample.sample}.npy"
                if sample.problem:
                    skipped.append({"sample": sample.sample, "reason": sample.problem})
                elif sample.label_cde is None and sample.label_sde is None:
                    skipped.append({"sample": sample.sample,
                                    "reason": f"emotion {sample.emotion!r} is excluded under CDE and SDE"})
                elif target.exists() and sample.sample in old_rows:
                    rows.append(old_rows[sample.sample])
                    counts["reused"] += 1
                    continue
                else:
                    try:
                        x, apex_path = _make_input(sample, recipe, locator)
                    except EPIRError as e:
                        skipped.append({"sample": sample.sample, "reason": str(e)})
                    else:
                        with atomic_path(target) as tmp:  # a killed run never leaves a half-written input
                            np.save(tmp, x)
                        rows.append(_index_row(sample, dataset, apex_path, sample.apex_source))
                        counts["prepared"] += 1
                        continue
                counts["skipped"] += 1
        finally:
            flush()
    max_flow = sum(r["apex_source"] == "max-flow" for r in rows)
    return {"dataset": dataset, "out": str(out), "samples": len(samples), **counts,
            "apex_max_flow": max_flow, "recipe": recipe.to_dict()}


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    dataset: Dataset = typer.Argument(..., help="Which raw database ROOT holds."),
    root: Path = typer.Option(None, "--root", help="The database's official folder (sheet + frame folders)."),
    out: Path = typer.Option(..., "--out", help="Output folder; an existing one is resumed."),
    recipe: str = typer.Option("composite", "--recipe",
                               help="composite (TV-L1, as the MEGC 2019 composite), paper (Farneback), or a recipe .json."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N samples (a quick look)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Turn a raw database into cached model inputs (one .npy per sample + index.csv).

    Examples:

      python -m train.prepare casme2 --root /data/CASME2 --out runs/prep/casme2

      python -m train.prepare smic --root /data/SMIC --out runs/prep/smic --recipe paper

      python -m train.prepare casme3 --root /data/CASME3/part_A --out runs/prep/casme3 --limit 20 --json
    """
    console = Console(stderr=True, soft_wrap=True)  # messages stay one line each, whatever the width
    try:
        if root is None:
            raise BadOption(f"--root is required: the folder of the {dataset.value} database")
        if not root.is_dir() or not any(root.iterdir()):
            raise BadOption(f"--root: {root} is missing or empty")
        summary = run(dataset.value, root, out, _load_recipe(recipe), limit, console)
    except (BadOption, LayoutError) as e:
        console.print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE)
    except OutFolderTaken as e:
        console.print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.OUTPUT)
    except (ValueError, KeyError, OSError) as e:  # an unreadable sheet (xlsx.read_rows), recipe or --out
        console.print(f"error: {type(e).__name__}: {e}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE)
    except KeyboardInterrupt:
        console.print(f"interrupted: the inputs made so far are in {out}; run again to resume")
        raise typer.Exit(ExitCode.INTERRUPTED)
    table = Table(title=f"{dataset.value} -> {out}")
    for key in ("samples", "prepared", "reused", "skipped", "apex_max_flow"):
        table.add_row(key, str(summary.get(key, 0)))
    console.print(table)
    if summary["apex_max_flow"]:
        console.print(f"{summary['apex_max_flow']} samples have no annotated apex: their apex is the frame of "
                      "maximal flow magnitude from onset (index.csv apex_source = max-flow)")
    if summary.get("skipped"):
        console.print(f"skipped samples and reasons: {out / 'skipped.csv'}")
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    app()
