"""Evidence that the recipe behaves like the composite's, and the TV-L1 speed/fidelity table.

    python -m benchmarks.recipe_evidence [--faces DIR] [--pairs N] [--json]

1. Synthetic warps of real apex faces (a Gaussian bump of known displacement, sensor noise, a
   little head sway): does the input recover the sign of u and v at the bump, is the strain
   highest near it, and are the per-channel statistics in the composite's range?
2. TV-L1 settings (pyramid levels, warps, iterations, crop size) -> ms per pair on one CPU thread,
   and per-channel correlation of the 28x28 input with full-quality TV-L1 on 170x140 crops, next
   to that reference's correlation with itself on the same pairs through fresh sensor noise.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from epir_core.paths import data_root
from epir_core.preprocess.face import Face, FaceLocator
from epir_core.preprocess.flow import compute_flow
from epir_core.preprocess.pipeline import crop_matrix, crop_pair, flow_to_input, make_model_input
from epir_core.preprocess.recipe import FLOW_NAMES, DISParams, FarnebackParams, InputRecipe, TVL1Params
from epir_core.preprocess.synthetic import Warp, synthetic_pair

COMPOSITE_MEAN = (0.494, 0.531, 0.100)  # flow-and-data.md, measured on flow_uvs_28
COMPOSITE_STD = (0.195, 0.251, 0.126)
DEFAULT_FACES = data_root() / "megc2019_composite" / "apex_face_224"

# (crop, flow parameters): the full-quality TV-L1 reference, cheaper TV-L1 settings (fewer pyramid
# levels, warps and iterations, smaller crops), and the other flows for comparison.
FLOW_SETTINGS = [
    ((170, 140), TVL1Params()),
    ((170, 140), TVL1Params(scales=1)),  # the composite recipe's
    ((170, 140), TVL1Params(scales=3, warps=3, inner_iterations=10, outer_iterations=3)),
    ((170, 140), TVL1Params(scales=3, warps=2, inner_iterations=5, outer_iterations=1, median_filtering=1)),
    ((170, 140), TVL1Params(scales=1, warps=1, inner_iterations=10, outer_iterations=1, median_filtering=1)),
    ((112, 92), TVL1Params()),
    ((112, 92), TVL1Params(scales=3, warps=3, inner_iterations=10, outer_iterations=3)),
    ((112, 92), TVL1Params(scales=2, warps=1, inner_iterations=10, outer_iterations=1, median_filtering=1)),
    ((84, 70), TVL1Params(scales=2, warps=2, inner_iterations=10, outer_iterations=2)),
    ((56, 46), TVL1Params(scales=2, warps=3, inner_iterations=10, outer_iterations=3)),
    ((170, 140), FarnebackParams()),
    ((170, 140), DISParams("medium")),
    ((170, 140), DISParams("ultrafast")),
]
_SHORT = {"scales": "levels", "inner_iterations": "inner", "outer_iterations": "outer", "median_filtering": "median"}
FIDELITY = 0.95  # per-channel correlation a cheaper setting must reach to stand in for the reference
# Full-quality TV-L1 (OpenCV's defaults: five scales), the reference the table compares against.
REFERENCE = replace(InputRecipe.composite(), flow_params=TVL1Params())


FACE_PAD = 48  # px of reflected border round each 224 px face: 320 px images, face in the middle 70 %


def random_warp(rng: np.random.Generator) -> Warp:
    """A bump at a brow or a mouth corner of the padded face, 1-2.5 px, in a random direction."""
    cx, cy = [(0.3, 0.3), (0.7, 0.3), (0.32, 0.75), (0.68, 0.75)][rng.integers(4)]
    inner = 224 / (224 + 2 * FACE_PAD)
    angle, size = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.5)
    return Warp(cx=(1 - inner) / 2 + inner * cx, cy=(1 - inner) / 2 + inner * cy, dx=size * np.cos(angle),
                dy=size * np.sin(angle), sigma=inner * rng.uniform(0.06, 0.1))


class Pair(NamedTuple):
    onset: np.ndarray
    apex: np.ndarray
    warp: Warp
    face: Face
    again: tuple[np.ndarray, np.ndarray]  # the same onset and apex through a fresh draw of sensor noise


def make_pairs(faces_dir: Path, n: int, seed: int = 0) -> list[Pair]:
    """n synthetic pairs from the first n faces (sorted) of faces_dir."""
    rng = np.random.default_rng(seed)
    files = sorted(faces_dir.glob("*.jpg"))[:: max(1, len(sorted(faces_dir.glob("*.jpg"))) // n)][:n]
    pairs = []
    with FaceLocator() as locator:
        for f in files:
            # A border of reflected pixels stands in for the background a real frame has round the face.
            image = cv2.imread(str(f))
            if image is None:  # OpenCV hangs in copyMakeBorder when handed None
                raise FileNotFoundError(f"--faces: cannot read {f}")
            face = cv2.copyMakeBorder(image, *[FACE_PAD] * 4, cv2.BORDER_REFLECT)
            warp, pair_seed = random_warp(rng), int(rng.integers(2**31))
            onset, apex = synthetic_pair(face, warp, np.random.default_rng(pair_seed))
            again = synthetic_pair(face, warp, np.random.default_rng(pair_seed), noise_rng=rng)
            pairs.append(Pair(onset, apex, warp, locator.locate(face), again))
    return pairs


def _warp_in_input(warp: Warp, face: Face, recipe: InputRecipe, shape: tuple[int, int]) -> tuple[float, float, float]:
    """The bump's centre in 28x28 input coordinates (col, row), and input pixels per frame pixel."""
    m = np.diag([recipe.size / recipe.crop_width, recipe.size / recipe.crop_height]) @ crop_matrix(face, recipe)  # frame -> input
    col, row = m[:, :2] @ (warp.cx * shape[1], warp.cy * shape[0]) + m[:, 2]
    return col, row, float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def warp_evidence(pairs, recipe: InputRecipe) -> dict:
    """Direction, location and statistics of the recipe's inputs on synthetic pairs."""
    u_ok = v_ok = near = 0
    contrast = []
    inputs = []
    for onset, apex, warp, box, _ in pairs:
        x = make_model_input(onset, apex, recipe, box)  # 3 x 28 x 28
        inputs.append(x)
        col, row, scale = _warp_in_input(warp, box, recipe, onset.shape[:2])
        rows, cols = np.mgrid[0 : recipe.size, 0 : recipe.size]
        weight = np.exp(-((cols - col) ** 2 + (rows - row) ** 2) / (2 * 3.0**2))  # the bump, in input pixels
        # Zero motion has no fixed value after min-max, so compare the bump with the frame's median.
        u_ok += np.sign(((x[0] - np.median(x[0])) * weight).sum()) == np.sign(warp.dx)
        v_ok += np.sign(((x[1] - np.median(x[1])) * weight).sum()) == np.sign(warp.dy)
        # TV-L1 flow has artefacts along the crop's edges (content leaving the crop), and strain,
        # a derivative, peaks there too: the peak is looked for inside a 2-pixel border.
        strain = cv2.GaussianBlur(x[2], (5, 5), 0)[2:-2, 2:-2]
        peak_row, peak_col = np.add(np.unravel_index(np.argmax(strain), strain.shape), 2)
        bump_px = 2.5 * warp.sigma * onset.shape[1] * scale
        near += np.hypot(peak_col - col, peak_row - row) <= bump_px
        inside = np.hypot(cols - col, rows - row) <= bump_px
        contrast.append(x[2][inside].mean() / max(x[2][~inside].mean(), 1e-6))
    stack = np.stack(inputs)  # N x 3 x 28 x 28
    n = len(pairs)
    return {
        "pairs": n,
        "u_sign_correct": u_ok / n,
        "v_sign_correct": v_ok / n,
        "strain_peak_at_warp": near / n,
        "strain_inside_over_outside": round(float(np.median(contrast)), 2),
        "mean": [round(float(m), 3) for m in stack.mean(axis=(0, 2, 3))],
        "std": [round(float(s), 3) for s in stack.std(axis=(0, 2, 3))],
        "composite_mean": list(COMPOSITE_MEAN),
        "composite_std": list(COMPOSITE_STD),
    }


def _correlations(x: np.ndarray, reference: np.ndarray) -> list[float]:
    return [float(np.corrcoef(x[c].ravel(), reference[c].ravel())[0, 1]) for c in range(3)]


def _reference_input(onset: np.ndarray, apex: np.ndarray, face: Face) -> np.ndarray:
    return flow_to_input(compute_flow(*crop_pair(onset, apex, REFERENCE, face), REFERENCE.flow_params), REFERENCE)


def noise_floor(pairs: list[Pair], references: list[np.ndarray]) -> list[float]:
    """Mean per-channel correlation of the reference's input (`references`, one per pair) with
    itself on the same pair seen through fresh sensor noise: how closely the reference reproduces
    its own input, and so the closest a stand-in can be expected to come."""
    corr = [_correlations(_reference_input(*p.again, p.face), ref) for p, ref in zip(pairs, references)]
    return [round(float(c), 3) for c in np.nanmean(np.array(corr), axis=0)]


def flow_table(pairs: list[Pair], references: list[np.ndarray], floor: list[float], repeats: int = 3) -> list[dict]:
    """ms per pair (one thread, median over pairs of the best of `repeats`) and per-channel
    correlation with the full-quality TV-L1 reference's input (`references`), for each of
    FLOW_SETTINGS. A setting holds when every channel reaches FIDELITY; it is within noise when
    every channel reaches `floor`."""
    cv2.setNumThreads(1)
    rows = []
    for (height, width), params in FLOW_SETTINGS:
        recipe = replace(REFERENCE, crop_height=height, crop_width=width, flow=FLOW_NAMES[type(params)],
                         flow_params=params)
        times, corr = [], []
        for pair, ref in zip(pairs, references):
            o, a = crop_pair(pair.onset, pair.apex, recipe, pair.face)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                flow = compute_flow(o, a, params)
                best = min(best, time.perf_counter() - start)
            times.append(best * 1e3)
            corr.append(_correlations(flow_to_input(flow, recipe), ref))
        mean_corr = np.round(np.nanmean(np.array(corr), axis=0), 3)
        settings = {k: v for k, v in asdict(params).items() if v != getattr(type(params)(), k)}
        rows.append({"flow": recipe.flow, "crop": f"{height}x{width}",
                     "settings": " ".join(f"{_SHORT.get(k, k)}={v}" for k, v in settings.items()) or "defaults",
                     "ms": round(statistics.median(times), 1),
                     "corr_u": float(mean_corr[0]), "corr_v": float(mean_corr[1]), "corr_strain": float(mean_corr[2]),
                     "holds": bool(mean_corr.min() >= FIDELITY),
                     "within_noise": bool((mean_corr >= floor).all())})
    return rows


def main(
    faces: Path = typer.Option(DEFAULT_FACES, help="Folder of real face images (the composite's apex faces)."),
    pairs: int = typer.Option(24, help="Number of synthetic pairs."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Synthetic-warp evidence and the TV-L1 speed/fidelity table.

    Example: python -m benchmarks.recipe_evidence --pairs 24
    """
    console = Console(stderr=True, width=140)
    if not faces.is_dir() or not any(faces.glob("*.jpg")):
        console.print(f"--faces: no .jpg faces in {faces}")
        raise typer.Exit(2)
    try:
        data = make_pairs(faces, pairs)
    except FileNotFoundError as e:
        console.print(str(e))
        raise typer.Exit(2) from None
    result = {
        "warp_composite_recipe": warp_evidence(data, InputRecipe.composite()),
        "warp_full_tvl1": warp_evidence(data, REFERENCE),
        "warp_paper_recipe": warp_evidence(data, InputRecipe.paper()),
    }
    references = [_reference_input(p.onset, p.apex, p.face) for p in data]
    result["noise_floor"] = noise_floor(data, references)
    result["flow"] = flow_table(data, references, result["noise_floor"])
    for name in ("warp_composite_recipe", "warp_full_tvl1", "warp_paper_recipe", "noise_floor"):
        console.print(name, result[name])
    table = Table(title=f"Flow on 1 CPU thread vs full-quality TV-L1 (170x140, OpenCV defaults); "
                        f"holds = every channel's correlation >= {FIDELITY}; within noise = every channel's "
                        f">= the reference's own on fresh sensor noise {result['noise_floor']}")
    for key in result["flow"][0]:
        table.add_column(key)
    for row in result["flow"]:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
