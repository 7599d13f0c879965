"""CASME II (200 fps) from its official release.

    ROOT/CASME2-coding-*.xlsx
    ROOT/<CASME2_RAW_selected | Cropped | ...>/sub01/EP02_01f/img46.jpg   (Cropped: reg_img46.jpg)

Sheet columns: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, ..., Estimated Emotion. Some
apex cells are "/": those samples take the frame of maximal flow from onset.
"""

from __future__ import annotations

from pathlib import Path

from train.data.raw import LayoutError, RawSample, find_dir, find_file, sheet_sample
from train.data.xlsx import read_table

COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")


def read_casme2(root: Path) -> list[RawSample]:
    sheet = find_file(root, "CASME2-coding-*.xlsx")
    frames_root = find_dir(root, lambda d: any(d.glob("sub[0-9]*/EP*")))
    if frames_root is None:
        raise LayoutError(f"--root: no sub*/EP* frame folders under {root}")
    samples = []
    for row in read_table(sheet, COLUMNS):
        subject = f"sub{int(row['Subject']):02d}"
        clip = frames_root / subject / row["Filename"]
        frames = (row["OnsetFrame"], row["ApexFrame"], row["OffsetFrame"])
        samples.append(sheet_sample("casme2", subject, f"{subject}_{row['Filename']}", clip, *frames,
                                    row["Estimated Emotion"]))
    return samples
