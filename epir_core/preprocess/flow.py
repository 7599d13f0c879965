"""Dense optical flow onset -> apex on grey face crops: TV-L1, Farneback or DIS.

OpenCV's CUDA TV-L1 and Farneback are used when the installed OpenCV has CUDA devices (no PyPI wheel
has); otherwise TV-L1 runs on a CUDA GPU through its torch port (tvl1_torch.py) when torch sees one,
and everything else on the CPU. TV-L1 on the CPU needs opencv-contrib (cv2.optflow).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from epir_core.errors import FlowError
from epir_core.preprocess.recipe import DISParams, FarnebackParams, FlowParams, TVL1Params

BACKENDS = ("cpu", "cuda", "torch")  # OpenCV on the CPU, OpenCV's CUDA, the TV-L1 torch port
_SUPPORTED = {TVL1Params: BACKENDS, FarnebackParams: ("cpu", "cuda"), DISParams: ("cpu",)}


def cuda_available() -> bool:
    """True when this OpenCV build has CUDA optical flow and a device to run it on."""
    try:
        return cv2.cuda.getCudaEnabledDeviceCount() > 0 and hasattr(cv2.cuda, "FarnebackOpticalFlow_create")
    except (AttributeError, cv2.error):
        return False


@lru_cache(maxsize=1)
def torch_device() -> str:
    """'cuda' when torch sees a CUDA device, else 'cpu': where the TV-L1 torch port runs."""
    import torch  # here, so that Farneback and DIS users never load torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def flow_backend(params: FlowParams) -> str:
    """The implementation compute_flow uses for these parameters, one of BACKENDS."""
    if isinstance(params, DISParams):
        return "cpu"
    if cuda_available():
        return "cuda"
    if isinstance(params, TVL1Params) and torch_device() == "cuda":
        return "torch"
    return "cpu"


@lru_cache(maxsize=8)
def _cpu_tvl1(p: TVL1Params):
    if not hasattr(cv2, "optflow"):
        raise FlowError("TV-L1 flow needs opencv-contrib-python (cv2.optflow); use the farneback or dis recipe")
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.scales, warps=p.warps, epsilon=p.epsilon,
        innnerIterations=p.inner_iterations, outerIterations=p.outer_iterations, scaleStep=p.scale_step,
        gamma=p.gamma, medianFiltering=p.median_filtering,
    )


@lru_cache(maxsize=8)
def _cuda_tvl1(p: TVL1Params):
    # OpenCV's CUDA TV-L1 has one iteration count and no median filter; inner x outer is the budget.
    return cv2.cuda.OpticalFlowDual_TVL1_create(
        p.tau, p.lambda_, p.theta, p.scales, p.warps, p.epsilon,
        p.inner_iterations * p.outer_iterations, p.scale_step, p.gamma, False,
    )


@lru_cache(maxsize=8)
def _cuda_farneback(p: FarnebackParams):
    return cv2.cuda.FarnebackOpticalFlow_create(p.levels, p.pyr_scale, False, p.winsize, p.iterations, p.poly_n,
                                                p.poly_sigma, 0)


_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


@lru_cache(maxsize=4)
def _dis(p: DISParams):
    return cv2.DISOpticalFlow_create(_DIS_PRESETS[p.preset])


def farneback(onset_grey: np.ndarray, apex_grey: np.ndarray, p: FarnebackParams) -> np.ndarray:
    """CPU Farneback flow, H x W x 2: the paper's recipe, and the live spotter's per-frame motion."""
    return cv2.calcOpticalFlowFarneback(onset_grey, apex_grey, None, p.pyr_scale, p.levels, p.winsize,
                                        p.iterations, p.poly_n, p.poly_sigma, 0)


def _cuda_calc(algorithm, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    # CUDA TV-L1 wants float images; Farneback accepts 8-bit. Float works for both.
    a, b = cv2.cuda_GpuMat(), cv2.cuda_GpuMat()
    a.upload(onset.astype(np.float32) / 255)
    b.upload(apex.astype(np.float32) / 255)
    return algorithm.calc(a, b, None).download()


def compute_flow(onset_grey: np.ndarray, apex_grey: np.ndarray, params: FlowParams,
                 backend: str | None = None) -> np.ndarray:
    """Flow from onset to apex: H x W x 2 float32 (u rightward, v downward, in pixels).

    onset_grey, apex_grey: H x W uint8. backend: one of BACKENDS to force an implementation (tests,
    benchmarks); None = flow_backend(params). Raises FlowError if the result is not finite.
    """
    if onset_grey.shape != apex_grey.shape or onset_grey.ndim != 2:
        raise FlowError(f"flow needs two grey images of one size, got {onset_grey.shape} and {apex_grey.shape}")
    if type(params) not in _SUPPORTED:
        raise FlowError(f"unknown flow parameters {type(params).__name__}")
    backend = backend or flow_backend(params)
    if backend not in _SUPPORTED[type(params)]:
        raise ValueError(f"no {backend!r} flow backend for {type(params).__name__}")
    if isinstance(params, TVL1Params):
        if backend == "cuda":
            flow = _cuda_calc(_cuda_tvl1(params), onset_grey, apex_grey)
        elif backend == "torch":
            from epir_core.preprocess.tvl1_torch import tvl1_flow  # loads torch

            flow = tvl1_flow(onset_grey, apex_grey, params, torch_device())
        else:
            flow = _cpu_tvl1(params).calc(onset_grey, apex_grey, None)
    elif isinstance(params, FarnebackParams):
        if backend == "cuda":
            flow = _cuda_calc(_cuda_farneback(params), onset_grey, apex_grey)
        else:
            flow = farneback(onset_grey, apex_grey, params)
    else:
        flow = _dis(params).calc(onset_grey, apex_grey, None)
    if not np.isfinite(flow).all():
        raise FlowError("optical flow produced non-finite values")
    return flow.astype(np.float32, copy=False)
