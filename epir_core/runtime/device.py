"""The one answer to "which device?" for every command."""

from __future__ import annotations

import torch

from epir_core.errors import DeviceUnavailable

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """auto -> cuda when PyTorch sees a GPU, else cpu. Raises ValueError for an unknown name and
    DeviceUnavailable for cuda without a GPU."""
    if name not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("--device cuda: this PyTorch build sees no CUDA GPU")
    return name
