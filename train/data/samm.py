"""SAMM (200 fps) from its official release.

    ROOT/SAMM_Micro_FACS_Codes_v2.xlsx   (about 13 rows of notes above the header)
    ROOT/[SAMM/]006/006_1_2/006_05562.jpg   (frame-number padding varies)

Sheet columns: Subject, Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame, Duration,
Type, Action Units, Estimated Emotion, Objective Classes, Notes.
"""

from __future__ import annotations

import re
from pathlib import Path

from train.data.raw import LayoutError, RawSample, find_dir, find_file, sheet_sample
from train.data.xlsx import read_table

COLUMNS = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion")


def read_samm(root: Path) -> list[RawSample]:
    sheet = find_file(root, "SAMM_Micro_FACS_Codes*.xlsx")
    frames_root = find_dir(root, lambda d: any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in d.iterdir()))
    if frames_root is None:
        raise LayoutError(f"--root: no 3-digit subject folders (006/006_1_2/...) under {root}")
    samples = []
    for row in read_table(sheet, COLUMNS):
        subject = f"{int(row['Subject']):03d}"
        clip = frames_root / subject / row["Filename"]
        frames = (row["Onset Frame"], row["Apex Frame"], row["Offset Frame"])
        samples.append(sheet_sample("samm", subject, row["Filename"], clip, *frames, row["Estimated Emotion"]))
    return samples
