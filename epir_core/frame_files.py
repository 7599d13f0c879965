"""Frames saved as image files, one folder per clip, as the databases and cameras save them: which
files are frames, their numbers and their order. The trainer's readers and the live app's --frames
read folders the same way."""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def frame_number(path: Path) -> int | None:
    """The last digit run of the name, whatever its zero padding (img46.jpg, reg_img46.jpg,
    006_05562.jpg, 175.jpg); None for a name without digits."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def frames_in_order(folder: Path) -> list[Path]:
    """The image files of a frames folder in frame order: numbers in names compare as numbers, since
    databases number frames without zero padding (CASME II: img99.jpg, img100.jpg)."""
    def key(path: Path) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=key)
