"""The TV-L1 torch port against OpenCV's TV-L1, and how compute_flow chooses it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from epir_core.preprocess import FarnebackParams, InputRecipe, TVL1Params, compute_flow, flow_backend, flow_to_input
from epir_core.preprocess import flow as flow_module
from epir_core.preprocess import tvl1_torch
from epir_core.preprocess.synthetic import Warp, synthetic_pair
from tests.fixtures_data import face_frame

# Fewer iterations than the recipe's keep the test short. With the full budget OpenCV's stopping rule
# makes TV-L1 chaotic on some pairs: 1e-4 grey levels of noise on the input move OpenCV's own output as
# much as the port differs from it, so no port can promise a pair-by-pair match there.
PARAMS = TVL1Params(warps=2, inner_iterations=5, outer_iterations=2)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    face = cv2.resize(cv2.cvtColor(face_frame(), cv2.COLOR_BGR2GRAY), (140, 170), interpolation=cv2.INTER_AREA)
    return synthetic_pair(face, Warp(cx=0.32, cy=0.75, dx=1.8, dy=-1.2), np.random.default_rng(0))


def _opencv(onset: np.ndarray, apex: np.ndarray, p: TVL1Params) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.scales, warps=p.warps, epsilon=p.epsilon,
        innnerIterations=p.inner_iterations, outerIterations=p.outer_iterations, scaleStep=p.scale_step,
        gamma=p.gamma, medianFiltering=p.median_filtering).calc(onset, apex, None)


def _correlations(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1] for c in range(len(a))]


# The port reproduces OpenCV 4.x's arithmetic (its bicubic remap table, its resize weights);
# OpenCV 5, which pip takes on Python 3.13, computes both differently.
OPENCV_4 = pytest.mark.skipif(int(cv2.__version__.split(".")[0]) >= 5,
                              reason=f"the port follows OpenCV 4.x's remap and resize; this is OpenCV {cv2.__version__}")


@OPENCV_4
def test_torch_port_matches_opencv_after_the_recipe(pair):
    reference = _opencv(*pair, PARAMS)
    ours = compute_flow(*pair, PARAMS, backend="torch")
    assert ours.shape == reference.shape and ours.dtype == np.float32
    assert min(_correlations(reference.transpose(2, 0, 1), ours.transpose(2, 0, 1))) >= 0.99
    recipe = InputRecipe(flow_params=PARAMS)
    assert min(_correlations(flow_to_input(reference, recipe), flow_to_input(ours, recipe))) >= 0.99


def test_each_pair_of_a_batch_stops_on_its_own(pair):
    onset, apex = pair
    still = (onset, onset)  # no motion: converges at once, while the moving pair keeps iterating
    batch = tvl1_torch.tvl1_flow(np.stack([still[0], onset]), np.stack([still[1], apex]), PARAMS)
    assert np.abs(batch[0]).max() < 1e-3
    np.testing.assert_allclose(batch[1], tvl1_torch.tvl1_flow(onset, apex, PARAMS), atol=1e-4)


@OPENCV_4
def test_remap_and_median_are_opencvs():
    rng = np.random.default_rng(1)
    image = (rng.random((40, 30)) * 255).astype(np.float32)
    u1, u2 = (rng.normal(0, 2, image.shape).astype(np.float32) for _ in range(2))  # some fall outside
    ys, xs = np.mgrid[0:40, 0:30].astype(np.float32)
    expected = cv2.remap(image, xs + u1, ys + u2, cv2.INTER_CUBIC)
    ours = tvl1_torch._remap_cubic(torch.from_numpy(image)[None, None], torch.from_numpy(u1)[None],
                                   torch.from_numpy(u2)[None])
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, atol=1e-3)
    # The GPU's median (the CPU borrows OpenCV's) picks exactly OpenCV's values.
    assert np.array_equal(tvl1_torch._median_torch(torch.from_numpy(u1)[None, None], 5)[0, 0].numpy(),
                          cv2.medianBlur(u1, 5))


def test_tvl1_runs_on_the_torch_port_only_when_torch_has_cuda_and_opencv_has_not(monkeypatch):
    monkeypatch.setattr(flow_module, "cuda_available", lambda: False)
    monkeypatch.setattr(flow_module, "torch_device", lambda: "cuda")
    assert flow_backend(TVL1Params()) == "torch" and flow_backend(FarnebackParams()) == "cpu"
    monkeypatch.setattr(flow_module, "torch_device", lambda: "cpu")
    assert flow_backend(TVL1Params()) == "cpu"
    monkeypatch.setattr(flow_module, "cuda_available", lambda: True)
    assert flow_backend(TVL1Params()) == "cuda"
    grey = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="no 'torch' flow backend"):
        compute_flow(grey, grey, FarnebackParams(), backend="torch")
