"""What produced a result: library versions and the git commit, recorded in every CLI's outputs."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A copy of the tree without .git (the GPU machine receives one) cannot find its commit; the command
# that ships the copy states it here, and outputs say the commit was stated, not read.
COMMIT_ENV = "EPIR_GIT_COMMIT"
_SHA = re.compile(r"[0-9a-f]{40}")


def git(*args: str) -> str | None:
    """Output of a git command in the checkout, or None outside one (an installed package, a copy)."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    # rev-parse echoes its argument on stdout even when it fails, so the exit code decides.
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> tuple[str | None, str | None]:
    """(commit, how it was found): from git; else from the .git files (a machine without git);
    else from $EPIR_GIT_COMMIT ("stated"); else (None, None)."""
    commit = git("rev-parse", "HEAD")
    if commit:
        return commit, "git"
    commit = _commit_from_files(REPO_ROOT)
    if commit:
        return commit, "git-files"
    stated = os.environ.get(COMMIT_ENV, "").strip().lower()
    return (stated, "stated") if _SHA.fullmatch(stated) else (None, None)


def git_dirty() -> bool | None:
    """True when tracked files differ from the commit; None when git cannot tell."""
    status = git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _commit_from_files(root: Path) -> str | None:
    """HEAD's commit read from .git directly: a plain checkout or a worktree (.git is then a file
    naming its git dir, whose `commondir` holds the shared refs), loose or packed refs."""
    try:
        dot = root / ".git"
        gitdir = dot if dot.is_dir() else (root / dot.read_text().removeprefix("gitdir:").strip()).resolve()
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve() if (gitdir / "commondir").is_file() else gitdir
        head = (gitdir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head if _SHA.fullmatch(head) else None  # a detached HEAD holds the commit itself
        ref = head.removeprefix("ref: ")
        for folder in (gitdir, common):
            if (folder / ref).is_file():
                return (folder / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    except OSError:
        return None
    return None


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # optional, or used from a checkout with PYTHONPATH=.
        return None


def versions() -> dict:
    import cv2
    import numpy
    import torch

    commit, found = git_commit()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": str(torch.__version__),  # TorchVersion is not a plain str: a safe torch.load refuses it
        "cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "epir_live": package_version("epir-live"),
        "git_commit": commit,
        "git_commit_from": found,
        "git_dirty": git_dirty(),
    }
