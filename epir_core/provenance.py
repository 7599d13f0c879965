"""What produced a result: library versions and the git commit, recorded in every CLI's outputs."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """Output of a git command in the checkout, or None outside one (an installed package, a copy)."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    # rev-parse echoes its argument on stdout even when it fails, so the exit code decides.
    return out.stdout.strip() if out.returncode == 0 else None


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # optional, or used from a checkout with PYTHONPATH=.
        return None


def versions() -> dict:
    import cv2
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": str(torch.__version__),  # TorchVersion is not a plain str: a safe torch.load refuses it
        "cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "epir_live": package_version("epir-live"),
        "git_commit": git("rev-parse", "HEAD"),
    }
