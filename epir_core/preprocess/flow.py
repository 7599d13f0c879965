"""Dense optical flow onset -> apex on grey face crops: TV-L1, Farneback or DIS.

OpenCV's CUDA TV-L1 and Farneback are used when the installed OpenCV has CUDA devices (most wheels
do not); otherwise the CPU implementations. TV-L1 on the CPU needs opencv-contrib (cv2.optflow).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from epir_core.errors import FlowError
from epir_core.preprocess.recipe import DISParams, FarnebackParams, FlowParams, TVL1Params


def cuda_available() -> bool:
    """True when this OpenCV build has CUDA optical flow and a device to run it on."""
    try:
        return cv2.cuda.getCudaEnabledDeviceCount() > 0 and hasattr(cv2.cuda, "FarnebackOpticalFlow_create")
    except (AttributeError, cv2.error):
        return False


def flow_backend(params: FlowParams) -> str:
    """'cuda' or 'cpu': the implementation compute_flow will use for these parameters."""
    return "cuda" if cuda_available() and not isinstance(params, DISParams) else "cpu"


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


def compute_flow(onset_grey: np.ndarray, apex_grey: np.ndarray, params: FlowParams) -> np.ndarray:
    """Flow from onset to apex: H x W x 2 float32 (u rightward, v downward, in pixels).

    onset_grey, apex_grey: H x W uint8. Raises FlowError if the result is not finite.
    """
    if onset_grey.shape != apex_grey.shape or onset_grey.ndim != 2:
        raise FlowError(f"flow needs two grey images of one size, got {onset_grey.shape} and {apex_grey.shape}")
    backend = flow_backend(params)
    if isinstance(params, TVL1Params):
        if backend == "cuda":
            flow = _cuda_calc(_cuda_tvl1(params), onset_grey, apex_grey)
        else:
            flow = _cpu_tvl1(params).calc(onset_grey, apex_grey, None)
    elif isinstance(params, FarnebackParams):
        if backend == "cuda":
            flow = _cuda_calc(_cuda_farneback(params), onset_grey, apex_grey)
        else:
            flow = farneback(onset_grey, apex_grey, params)
    elif isinstance(params, DISParams):
        flow = _dis(params).calc(onset_grey, apex_grey, None)
    else:
        raise FlowError(f"unknown flow parameters {type(params).__name__}")
    if not np.isfinite(flow).all():
        raise FlowError("optical flow produced non-finite values")
    return flow.astype(np.float32, copy=False)
