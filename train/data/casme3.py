"""CAS(ME)^3 part A (30 fps) from its official release.

    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx
    ROOT/.../spNO.1/b/color/175.jpg      (the case of "spNO" varies between subjects)

Sheet columns: Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion. One clip may
hold several micro-expressions, so a sample is named subject_clip_onset.
"""

from __future__ import annotations

from pathlib import Path

from train.data.raw import LayoutError, RawSample, find_dir, find_file, sheet_sample
from train.data.xlsx import read_table

COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "emotion")


def _is_subject(path: Path) -> bool:
    return path.is_dir() and path.name.lower().startswith("spno.")


def read_casme3_sheet(sheet: Path) -> list[dict[str, str]]:
    return read_table(sheet, COLUMNS)


def read_casme3(root: Path) -> list[RawSample]:
    sheet = find_file(root, "*part_A*label*.xlsx")
    frames_root = find_dir(root, lambda d: any(_is_subject(p) for p in d.iterdir()), depth=3)
    if frames_root is None:
        raise LayoutError(f"--root: no spNO.* subject folders under {root}")
    subject_dirs = {p.name.lower(): p for p in frames_root.iterdir() if _is_subject(p)}
    samples = []
    for row in read_casme3_sheet(sheet):
        subject = row["Subject"]
        subject_dir = subject_dirs.get(subject.lower(), frames_root / subject)
        clip = subject_dir / row["Filename"] / "color"
        samples.append(sheet_sample("casme3", subject, f"{subject}_{row['Filename']}_{row['Onset']}", clip,
                                    row["Onset"], row["Apex"], row["Offset"], row["emotion"]))
    return samples
