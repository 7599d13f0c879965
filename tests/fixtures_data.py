"""Tiny fake databases in each official layout, made from the shipped portrait's face warped over a few frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from epir_core.preprocess.synthetic import Warp, warp_image
from realtime.demo_clip import ASTRONAUT
from train.data.xlsx import write_xlsx

CLASSES = ("negative", "positive", "surprise")  # of the untrained checkpoint fixture (conftest)
# The frame is the portrait's face square at 224 px with 48 px of its surroundings (as the composite's
# crops with a border), so a position p in the square is at (48 + 224 p) / 320 of the frame.
(_MOUTH_X, _MOUTH_Y), _ = ASTRONAUT.mouth
MOTION = Warp(cx=(48 + 224 * _MOUTH_X) / 320, cy=(48 + 224 * _MOUTH_Y) / 320, dx=2.0, dy=-1.5, sigma=0.06)  # left mouth corner


def face_frame() -> np.ndarray:
    """320 x 320 BGR: the portrait's face, about 224 px, and what surrounds it in the photograph."""
    image, (x, y, side) = ASTRONAUT.load()
    scale = 224 / side
    to_frame = np.float32([[scale, 0, 48 - x * scale], [0, scale, 48 - y * scale]])
    return cv2.warpAffine(image, to_frame, (320, 320), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def clip_frames(n: int, peak: int) -> list[np.ndarray]:
    """n frames whose motion grows to full MOTION at index `peak` and falls after it."""
    face = face_frame()
    field = MOTION.field(*face.shape[:2])
    return [warp_image(face, field * (1 - abs(i - peak) / max(peak, 1))) for i in range(n)]


def write_clip(folder: Path, names: list[str], peak: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, clip_frames(len(names), peak)):
        cv2.imwrite(str(folder / name), frame)


def make_casme2(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
    rows = [[1, "EP02_01f", 46, 48, 50, "12", "happiness"],
            [1, "EP03_02", 10, "/", 13, "4", "disgust"],      # apex "/": max-flow apex
            [2, "EP01_11f", 5, 7, 9, "14", "fear"],            # CDE excludes fear, SDE too
            [2, "EP05_02", 20, 22, 24, "R2", "others"],        # SDE only
            [2, "EP09_01", 1, 2, 3, "1", "surprise"]]           # no frames on disk
    write_xlsx(root / "CASME2-coding-20140508.xlsx", [header] + rows)
    for subject, clip, onset, apex, offset, *_ in rows[:4]:
        peak = (apex if apex != "/" else onset + 2) - onset
        names = [f"reg_img{n}.jpg" for n in range(onset, offset + 1)]
        write_clip(root / "Cropped" / f"sub{subject:02d}" / clip, names, peak)


def make_samm(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    notes = [["SAMM micro-movements, FACS coded"], ["Notes: frame numbers are absolute"]] + [[""]] * 11
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
              "Type", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    rows = [[6, "006_1_2", 1, 5562, 5564, 5566, 5, "Micro - 1/2", "R12", "Happiness", 1, ""],
            [7, "007_3_1", 3, 98, 100, 102, 5, "Micro - 1/2", "4", "Contempt", 3, ""],
            [7, "007_5_2", 5, 40, 41, 43, 4, "Micro - 1/2", "1+2", "Other", 7, ""],
            [7, "007_6_1", 6, 70, 71, 72, 3, "Micro - 1/2", "4", "Disgust", 3, ""]]
    write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", notes + [header] + rows)
    pads = {"006": 5, "007": 4}  # frame-number padding differs between subjects
    for subject, clip, _, onset, apex, offset, *_ in rows:
        sub = f"{subject:03d}"
        names = [f"{sub}_{n:0{pads[sub]}d}.jpg" for n in range(onset, offset + 1)]
        write_clip(root / "SAMM" / sub / clip, names, apex - onset)


def make_smic(root: Path) -> None:
    for subject, emotion, clip, peak in [("s1", "negative", "s1_ne_01", 3), ("s1", "positive", "s1_po_02", 2),
                                         ("s2", "surprise", "s2_sur_01", 3)]:
        names = [f"image{90820 + i:06d}.bmp" for i in range(6)]
        write_clip(root / "HS" / subject / "micro" / emotion / clip, names, peak)


def make_casme3(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    rows = [["spNO.1", "b", 166, 168, 170, "4", "III", "disgust"],
            ["spNO.1", "b", 200, 202, 203, "12", "I", "happy"],   # a second sample in the same clip
            ["spNO.2", "a", 10, 12, 13, "5", "II", "Others"],
            ["spNO.2", "c", 30, 30, 31, "1+2", "VII", "surprise"]]  # onset == apex
    write_xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [header] + rows)
    folders = {"spNO.1": "spNO.1", "spNO.2": "SpNO.2"}  # the case of "spNO" varies on disk
    for subject, clip, onset, apex, offset, *_ in rows:
        names = [f"{n}.jpg" for n in range(onset, offset + 1)]
        write_clip(root / "data" / "part_A" / folders[subject] / clip / "color", names, apex - onset)
