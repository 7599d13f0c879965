"""The on-disk cache of exported and compiled models (ONNX graphs, TensorRT programs, inductor's
kernels). A cached file is code this process will run, so it is guarded:

- the folder is created with mode 0700, and an existing one is refused unless it belongs to this
  user and nobody else can write to it;
- each file is written under a unique temporary name and renamed into place, and its SHA-256 is
  recorded beside it (NAME.sha256) once it is complete;
- before a load the hash is checked; a file that does not match, or that fails to load, is
  deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from epir_core.errors import CacheError
from epir_core.files import atomic_path, write_text_atomic

T = TypeVar("T")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def private_folder(folder: Path) -> Path:
    """Create `folder` (mode 0700) or check an existing one; raises CacheError when it belongs to
    someone else or is writable by group or others. Returns the resolved path."""
    folder = Path(folder).expanduser().resolve()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as e:
        raise CacheError(f"cache folder {folder}: {e.strerror or e}") from e
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache folder {folder} is not a folder")
    if info.st_uid != os.getuid():
        raise CacheError(f"cache folder {folder} belongs to another user (uid {info.st_uid}); choose another --cache-dir")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheError(
            f"cache folder {folder} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run chmod 700 on it or choose another --cache-dir"
        )
    return folder


class ModelCache:
    def __init__(self, folder: Path):
        self.folder = private_folder(folder)
        self.rebuilt: list[str] = []  # "NAME: why", for files found damaged and built again

    def get(self, name: str, build: Callable[[Path], None], load: Callable[[Path], T]) -> T:
        """load(path) of the cached file NAME; build(tmp) writes it first when it is missing, does
        not match its recorded hash, or fails to load."""
        path, digest = self.folder / name, self.folder / f"{name}.sha256"
        if path.exists():
            problem = self._check(path, digest)
            if problem is None:
                try:
                    return load(path)
                except Exception as e:  # noqa: BLE001 - each loader fails in its own library's way
                    problem = f"failed to load ({type(e).__name__})"
            self.rebuilt.append(f"{name}: {problem}")
            digest.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            build(tmp)
            recorded = sha256(tmp)
        write_text_atomic(digest, recorded + "\n")  # last: a file without its hash is never trusted
        return load(path)

    def inductor_dir(self) -> Path:
        """For torch.compile's kernels (TORCHINDUCTOR_CACHE_DIR), instead of a shared folder under /tmp."""
        return private_folder(self.folder / "inductor")

    @staticmethod
    def _check(path: Path, digest: Path) -> str | None:
        try:
            recorded = digest.read_text().strip()
        except OSError:
            return "no recorded SHA-256"
        return None if sha256(path) == recorded else "SHA-256 differs from the one recorded"
