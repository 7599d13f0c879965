"""Writing a file so that a reader never sees half of it: the one way every module does it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; once the block ends without error it is renamed
    onto `path`, otherwise removed. A reader (or a later run) sees the old file or the whole new one.

    The name is unique and created exclusively (O_EXCL), so two writers never share a temporary
    file and a planted symlink is never followed. It ends with `path`'s suffix, for writers that
    append one otherwise (np.save adds .npy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)  # atomic on POSIX; replaces a symlink at `path`, never writes through it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
