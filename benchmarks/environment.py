"""What a benchmark ran on: hardware, library versions, threads and the git commit, so records compare."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from epir_core.provenance import git_commit, git_dirty, package_version

# Distribution names; the optional ones are reported as null when absent.
_PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "opencv": "opencv-contrib-python",
    "opencv_headless": "opencv-python-headless",
    "onnxruntime": "onnxruntime",
    "onnxruntime_gpu": "onnxruntime-gpu",
    "torch_tensorrt": "torch-tensorrt",
    "tensorrt": "tensorrt",
    "mediapipe": "mediapipe",
    "ptflops": "ptflops",
}


def capture(threads: dict[str, int]) -> dict:
    return {
        "git_commit": git_commit()[0],
        "git_dirty": git_dirty(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count() or 0,
        "memory_gb": _memory_gb(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "opencv_cuda_devices": _opencv_cuda_devices(),
        "versions": {key: package_version(dist) for key, dist in _PACKAGES.items()},
        "threads": threads,
        # Other work on the machine skews timings (badly with 2 torch threads on 2 busy cores).
        "load_average_1m": os.getloadavg()[0],
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _opencv_cuda_devices() -> int:
    import cv2

    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):
        return 0
