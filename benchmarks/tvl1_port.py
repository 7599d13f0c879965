"""How closely and how fast the TV-L1 torch port reproduces OpenCV's TV-L1 on 170x140 face pairs.

For each pair (the real pairs of ../shared/data/real_frames, then synthetic pairs made from the
composite's faces): per-channel Pearson correlation of the port's flow and model input
(flow_to_input) with OpenCV's, and, as the yardstick, of OpenCV's with OpenCV's own output when the
onset moves by 1e-4 grey levels. Then the time of one pair and of a batch, OpenCV on the CPU against
the port on torch's device (a CUDA GPU when there is one).

Exit codes: 0 done; 2 bad usage (no data, no opencv-contrib).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from time import perf_counter

import cv2
import numpy as np
import torch
import typer
from rich.console import Console

from epir_core.preprocess import InputRecipe, TVL1Params, flow_to_input
from epir_core.preprocess.flow import torch_device
from epir_core.preprocess.synthetic import Warp, synthetic_pair
from epir_core.preprocess.tvl1_torch import tvl1_flow
from epir_core.provenance import REPO_ROOT

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
SIZE = (140, 170)  # width, height of the composite's crops
REAL_PAIRS = [("samm_006_1_2/onset.png", "samm_006_1_2/apex.png"),
              ("casme2_sub11_EP15_04f/onset.png", "casme2_sub11_EP15_04f/apex.png"),
              ("casme2_sub01_EP02_01f/tim10/001.jpg", "casme2_sub01_EP02_01f/tim10/004.jpg")]


@app.command(
    epilog="Examples:\n\n"
    "  python -m benchmarks.tvl1_port                      # the recipe's parameters, 12 synthetic pairs\n\n"
    "  python -m benchmarks.tvl1_port --epsilon 0 --synthetic 6   # no early stop: every iteration runs\n\n"
    "  python -m benchmarks.tvl1_port --json > tvl1_port.json\n"
)
def main(
    synthetic: int = typer.Option(12, min=0, help="Synthetic pairs after the 3 real ones."),
    epsilon: float = typer.Option(None, min=0.0, help="Override the recipe's stopping threshold."),
    runs: int = typer.Option(3, min=1, help="Timed runs (after one warm-up)."),
    batch: int = typer.Option(4, min=1, help="Pairs in the timed batch."),
    threads: int = typer.Option(2, min=1, help="Threads for torch and OpenCV on the CPU."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    data_root: Path = typer.Option(DEFAULT_DATA_ROOT, help="Holds real_frames/ and megc2019_composite/."),
) -> None:
    """Correlation with OpenCV's TV-L1 per pair, then the time of one pair and of a batch."""
    err = Console(stderr=True)
    if not hasattr(cv2, "optflow"):
        err.print("error: OpenCV's TV-L1 needs opencv-contrib-python (cv2.optflow)")
        raise typer.Exit(2)
    faces = sorted((data_root / "megc2019_composite" / "apex_face_224").glob("*.jpg"))
    if not (data_root / "real_frames").is_dir() or not faces:
        err.print(f"error: --data-root: {data_root} has no real_frames/ or megc2019_composite/apex_face_224/")
        raise typer.Exit(2)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    params = TVL1Params() if epsilon is None else replace(TVL1Params(), epsilon=epsilon)
    pairs = _pairs(data_root, faces, synthetic)
    opencv = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=params.tau, lambda_=params.lambda_, theta=params.theta, nscales=params.scales, warps=params.warps,
        epsilon=params.epsilon, innnerIterations=params.inner_iterations, outerIterations=params.outer_iterations,
        scaleStep=params.scale_step, gamma=params.gamma, medianFiltering=params.median_filtering)
    device = torch_device()
    rows = []
    with err.status("comparing") as status:
        for i, (name, onset, apex) in enumerate(pairs):
            status.update(f"pair {i + 1}/{len(pairs)}: {name}")
            rows.append(_compare(name, onset, apex, params, opencv, device))
        status.update("timing")
        timing = _timing(pairs, params, opencv, device, runs, batch)
    worst = np.array([[min(r["input_port"]), min(r["input_opencv_perturbed"])] for r in rows])
    summary = {"pairs": len(rows), "all_channels_ge_0.99": {"port": int((worst[:, 0] >= 0.99).sum()),
                                                              "opencv_perturbed": int((worst[:, 1] >= 0.99).sum())},
               "median_worst_channel": {"port": float(np.median(worst[:, 0])),
                                        "opencv_perturbed": float(np.median(worst[:, 1]))}}
    result = {"params": asdict(params), "device": device, "pairs": rows, "summary": summary, "timing_ms": timing}
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print(result)


def _pairs(data_root: Path, faces: list[Path], synthetic: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    def grey(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        return image if image.shape[::-1] == SIZE else cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)

    real = data_root / "real_frames"
    pairs = [(f"real {o.split('/')[0]}", grey(real / o), grey(real / a)) for o, a in REAL_PAIRS]
    rng = np.random.default_rng(0)
    for i, face in enumerate(faces[:: max(1, len(faces) // max(synthetic, 1))][:synthetic]):
        cx, cy = [(0.3, 0.3), (0.7, 0.3), (0.32, 0.75), (0.68, 0.75)][i % 4]  # a brow or a mouth corner
        angle, size = rng.uniform(0, 2 * np.pi), rng.uniform(1, 2.5)
        warp = Warp(cx, cy, size * np.cos(angle), size * np.sin(angle), sigma=0.08)
        pairs.append((f"synthetic {face.stem}", *synthetic_pair(grey(face), warp, rng)))
    return pairs


def _compare(name: str, onset: np.ndarray, apex: np.ndarray, params: TVL1Params, opencv, device: str) -> dict:
    recipe = InputRecipe(flow_params=params)
    reference = opencv.calc(onset, apex, None)
    port = tvl1_flow(onset, apex, params, device)
    noise = np.random.default_rng(1).normal(0, 1e-4, onset.shape).astype(np.float32)
    # Float input in [0, 1]: OpenCV scales it back to grey levels.
    perturbed = opencv.calc((onset + noise) / 255, apex.astype(np.float32) / 255, None)
    x_ref, x_port, x_pert = (flow_to_input(f, recipe) for f in (reference, port, perturbed))
    return {"pair": name,
            "flow_port": [_corr(reference[..., c], port[..., c]) for c in (0, 1)],
            "input_port": [_corr(x_ref[c], x_port[c]) for c in range(3)],
            "input_opencv_perturbed": [_corr(x_ref[c], x_pert[c]) for c in range(3)],
            "max_abs_diff_px": float(np.abs(reference - port).max())}


def _timing(pairs, params: TVL1Params, opencv, device: str, runs: int, batch: int) -> dict:
    onset, apex = pairs[0][1], pairs[0][2]
    onsets = np.stack([p[1] for p in pairs[:batch]])
    apexes = np.stack([p[2] for p in pairs[:batch]])
    return {"opencv_cpu_one_pair": _median_ms(lambda: opencv.calc(onset, apex, None), runs),
            f"port_{device}_one_pair": _median_ms(lambda: tvl1_flow(onset, apex, params, device), runs),
            f"port_{device}_batch_of_{len(onsets)}": _median_ms(lambda: tvl1_flow(onsets, apexes, params, device), runs)}


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up: CUDA context, caches
    samples = []
    for _ in range(runs):
        t0 = perf_counter()
        fn()
        samples.append((perf_counter() - t0) * 1e3)
    return float(np.median(samples))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _print(result: dict) -> None:
    fmt = lambda xs: " ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    print(f"device {result['device']}; epsilon {result['params']['epsilon']}")
    print(f"{'pair':32s} | port vs opencv: flow u v | input u v strain | max|d| px || opencv vs opencv+1e-4: input")
    for r in result["pairs"]:
        print(f"{r['pair']:32s} | {fmt(r['flow_port'])} | {fmt(r['input_port'])} | {r['max_abs_diff_px']:.3f} || "
              f"{fmt(r['input_opencv_perturbed'])}")
    print(json.dumps(result["summary"]))
    print(json.dumps(result["timing_ms"]))


if __name__ == "__main__":
    app()
