"""SMIC-HS (100 fps) from its official release; there is no sheet: the class is the folder.

    ROOT/[HS/]s1/micro/negative/s1_ne_01/image090823.bmp

SMIC has no apex labels: every sample's apex is the frame of maximal flow magnitude from onset
(the first frame), chosen when the sample is prepared.
"""

from __future__ import annotations

import re
from pathlib import Path

from train.data.protocols import cde_label, sde_label
from train.data.raw import LayoutError, RawSample, find_dir, frames_by_number

CLASSES = ("negative", "positive", "surprise")


def read_smic(root: Path) -> list[RawSample]:
    hs = find_dir(root, lambda d: any(d.glob("s[0-9]*/micro")))
    if hs is None:
        raise LayoutError(f"--root: no s*/micro/<class>/<clip> folders (SMIC-HS) under {root}")
    samples = []
    for subject_dir in sorted(p for p in hs.iterdir() if re.fullmatch(r"s\d+", p.name)):
        for emotion in CLASSES:
            for clip in sorted((subject_dir / "micro" / emotion).glob("*")):
                frames = frames_by_number(clip)
                samples.append(RawSample(
                    dataset="smic", subject=subject_dir.name, sample=clip.name, emotion=emotion,
                    label_cde=cde_label("smic", emotion), label_sde=sde_label("smic", emotion),
                    frames=tuple(frames[n] for n in sorted(frames)), apex=None,
                    problem="" if len(frames) >= 2 else f"fewer than 2 frames in {clip}",
                ))
    return samples
