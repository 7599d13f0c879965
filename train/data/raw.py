"""What every raw-database reader yields, and the small path helpers the readers share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from epir_core.frame_files import frame_number, frames_in_order


class LayoutError(Exception):
    """The folder given is not the database's official layout (missing sheet or frames)."""


@dataclass(frozen=True)
class RawSample:
    dataset: str  # casme2 | samm | smic | casme3
    subject: str  # the database's own id (sub01, 006, s1, spNO.1): the LOSO group
    sample: str  # unique within the dataset; names the prepared file
    emotion: str  # the annotated emotion (lower case), or SMIC's class folder
    label_cde: str | None  # CDE 3-class name, None = excluded under CDE
    label_sde: str | None  # the database's SDE class name, None = excluded under SDE
    frames: tuple[Path, ...]  # onset .. offset (or .. last frame), in frame order
    apex: Path | None  # None = not annotated: the frame of maximal flow from onset is used
    problem: str = ""  # why the sample cannot be used (frames missing ...); '' = usable

    @property
    def onset(self) -> Path | None:
        return self.frames[0] if self.frames else None

    @property
    def apex_source(self) -> str:
        return "annotated" if self.apex is not None else "max-flow"


def frames_by_number(clip: Path) -> dict[int, Path]:
    """Frame number (epir_core.frame_files.frame_number) -> image path; empty for a missing clip."""
    if not clip.is_dir():
        return {}
    numbered = ((frame_number(path), path) for path in frames_in_order(clip))
    return {n: path for n, path in numbered if n is not None}


def frame_span(frames: dict[int, Path], first: int, last: int | None) -> tuple[Path, ...]:
    """The frames numbered first..last that exist (last None or before first = to the clip's end)."""
    if last is None or last < first:
        last = max(frames, default=first)
    return tuple(frames[n] for n in sorted(frames) if first <= n <= last)


def find_dir(root: Path, wanted: Callable[[Path], bool], depth: int = 2) -> Path | None:
    """root or the first folder below it (breadth first, `depth` levels) for which wanted() is true:
    releases differ in how many wrapper folders sit above the subject folders."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if wanted(folder):
                return folder
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir())
    return None


def find_file(root: Path, pattern: str, option: str = "--root") -> Path:
    """The first file matching `pattern` in root or one level below; LayoutError otherwise."""
    for found in sorted(root.glob(pattern)) + sorted(root.glob(f"*/{pattern}")):
        return found
    raise LayoutError(f"{option}: no {pattern} in {root}")


def parse_int(text: str) -> int | None:
    """Sheet cells: '175' -> 175; '/', '', '-' or other non-numbers (unannotated) -> None."""
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) and int(text) >= 0 else None


def sheet_sample(dataset: str, subject: str, sample: str, clip: Path, onset: str, apex: str, offset: str,
                 emotion: str) -> RawSample:
    """A sample from one annotation-sheet row (frame numbers as the sheet's text) and its clip folder."""
    from train.data.protocols import cde_label, sde_label

    first, peak, last = parse_int(onset), parse_int(apex), parse_int(offset)
    frames = frames_by_number(clip)
    span = frame_span(frames, first, last) if first is not None else ()
    problem = "" if span else f"no frames from onset {onset!r} in {clip}"
    if peak is not None and peak not in frames and not problem:
        problem = f"apex frame {peak} missing in {clip}"
    emotion = emotion.strip().lower()
    return RawSample(
        dataset=dataset, subject=subject, sample=sample, emotion=emotion,
        label_cde=cde_label(dataset, emotion), label_sde=sde_label(dataset, emotion),
        frames=span, apex=frames.get(peak) if peak is not None else None, problem=problem,
    )
