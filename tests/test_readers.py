"""Raw-database readers on tiny fakes of each official layout, and the real CAS(ME)^3 sheet."""

from __future__ import annotations

import csv
from collections import Counter

import cv2
import numpy as np
import pytest

from tests.fixtures_data import make_casme2, make_casme3, make_samm, make_smic
from train.data.casme2 import read_casme2
from train.data.casme3 import read_casme3, read_casme3_sheet
from train.data.protocols import cde_label, sde_label
from train.data.raw import LayoutError
from train.data.samm import read_samm
from train.data.smic import read_smic
from train.data.xlsx import read_rows, read_table, write_xlsx


def by_id(samples):
    return {s.sample: s for s in samples}


def test_a_file_that_is_not_a_workbook_is_one_value_error_naming_it(tmp_path):
    for name, content in (("garbage.xlsx", b"not a zip"), ("empty.xlsx", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: not a readable .xlsx workbook"):
            read_rows(tmp_path / name)
    write_xlsx(tmp_path / "good.xlsx", [["a"]])  # a zip whose worksheet is cut off: a broken download
    data = (tmp_path / "good.xlsx").read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.xlsx: not a readable .xlsx workbook"):
        read_rows(tmp_path / "cut.xlsx")


def test_xlsx_round_trip_keeps_gaps_numbers_and_finds_the_header(tmp_path):
    path = tmp_path / "t.xlsx"
    write_xlsx(path, [["a note"], [], ["Subject", "", "Apex"], [6, "x & y", "/"], ["7", "", 12]])
    assert read_rows(path) == [["a note"], [], ["Subject", "", "Apex"], ["6", "x & y", "/"], ["7", "", "12"]]
    assert read_table(path, ("Subject", "Apex")) == [{"Subject": "6", "Apex": "/"}, {"Subject": "7", "Apex": "12"}]
    with pytest.raises(ValueError, match="no header row"):
        read_table(path, ("Onset",))


def test_a_frames_folder_is_read_in_frame_order_by_the_trainer_and_the_live_app(tmp_path):
    """CASME II numbers frames without padding: name order would put img100 before img99."""
    from epir_core.frame_files import frames_in_order
    from realtime.sources import SourceSpec, open_source
    from train.data.raw import frames_by_number

    for n in (98, 99, 100, 101):
        cv2.imwrite(str(tmp_path / f"img{n}.png"), np.full((8, 8, 3), n, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    assert [p.name for p in frames_in_order(tmp_path)] == ["img98.png", "img99.png", "img100.png", "img101.png"]
    assert sorted(frames_by_number(tmp_path)) == [98, 99, 100, 101]
    with open_source(SourceSpec("frames", str(tmp_path), fps=200.0)) as frames:
        assert [int(frame.image[0, 0, 0]) for frame in frames] == [98, 99, 100, 101]


def test_protocol_mappings():
    assert [cde_label("casme2", e) for e in ("Happiness", "repression", "fear", "others")] == \
        ["positive", "negative", None, None]
    assert [sde_label("casme2", e) for e in ("repression", "others", "sadness")] == ["repression", "others", None]
    assert [cde_label("samm", e) for e in ("contempt", "sadness", "other")] == ["negative", "negative", None]
    assert [sde_label("samm", e) for e in ("Other", "contempt", "disgust")] == ["others", "contempt", None]
    assert [cde_label("casme3", e) for e in ("sad", "happy", "Others")] == ["negative", "positive", None]


def test_casme2(tmp_path):
    make_casme2(tmp_path)
    s = by_id(read_casme2(tmp_path))
    assert list(s) == ["sub01_EP02_01f", "sub01_EP03_02", "sub02_EP01_11f", "sub02_EP05_02", "sub02_EP09_01"]
    happy = s["sub01_EP02_01f"]
    assert (happy.subject, happy.emotion, happy.label_cde, happy.label_sde) == ("sub01", "happiness", "positive", "happiness")
    assert happy.onset.name == "reg_img46.jpg" and happy.apex.name == "reg_img48.jpg" and len(happy.frames) == 5
    assert s["sub01_EP03_02"].apex is None and s["sub01_EP03_02"].apex_source == "max-flow"
    assert (s["sub02_EP01_11f"].label_cde, s["sub02_EP01_11f"].label_sde) == (None, None)
    assert (s["sub02_EP05_02"].label_cde, s["sub02_EP05_02"].label_sde) == (None, "others")
    assert "no frames" in s["sub02_EP09_01"].problem and not happy.problem


def test_samm_header_after_notes_and_varying_padding(tmp_path):
    make_samm(tmp_path)
    s = by_id(read_samm(tmp_path))
    assert s["006_1_2"].onset.name == "006_05562.jpg" and s["006_1_2"].apex.name == "006_05564.jpg"
    assert s["007_3_1"].onset.name == "007_0098.jpg" and s["007_3_1"].subject == "007"
    labels = {k: (v.label_cde, v.label_sde) for k, v in s.items()}
    assert labels == {"006_1_2": ("positive", "happiness"), "007_3_1": ("negative", "contempt"),
                      "007_5_2": (None, "others"), "007_6_1": ("negative", None)}


def test_smic_class_from_folder_and_no_apex(tmp_path):
    make_smic(tmp_path)
    s = by_id(read_smic(tmp_path))
    assert set(s) == {"s1_ne_01", "s1_po_02", "s2_sur_01"}
    assert (s["s1_ne_01"].subject, s["s1_ne_01"].label_cde, s["s1_ne_01"].label_sde) == ("s1", "negative", "negative")
    assert all(v.apex is None and len(v.frames) == 6 for v in s.values())
    assert s["s2_sur_01"].onset.name == "image090820.bmp"


def test_casme3_several_samples_per_clip_and_subject_case(tmp_path):
    make_casme3(tmp_path)
    s = by_id(read_casme3(tmp_path))
    assert set(s) == {"spNO.1_b_166", "spNO.1_b_200", "spNO.2_a_10", "spNO.2_c_30"}
    assert s["spNO.1_b_200"].apex.name == "202.jpg" and s["spNO.1_b_200"].label_cde == "positive"
    assert s["spNO.2_c_30"].onset.parent.parent.parent.name == "SpNO.2"  # resolved whatever the case
    assert (s["spNO.2_a_10"].label_cde, s["spNO.2_a_10"].label_sde) == (None, None)
    assert all(not v.problem for v in s.values())


@pytest.mark.parametrize("reader", [read_casme2, read_samm, read_smic, read_casme3])
def test_wrong_layout_names_the_root_option(tmp_path, reader):
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(LayoutError, match="--root"):
        reader(tmp_path)


def test_real_casme3_sheet_against_htnet_table(shared_data):
    sheets = sorted((shared_data / "casme3_official").glob("*.xlsx"))
    if not sheets:
        pytest.skip(f"no CAS(ME)^3 sheet in {shared_data / 'casme3_official'}")
    rows = read_casme3_sheet(sheets[0])
    assert len(rows) == 860 and len({r["Subject"] for r in rows}) == 94
    labels = Counter(cde_label("casme3", r["emotion"]) for r in rows)
    assert labels == {"negative": 457, "surprise": 187, "positive": 55, None: 161}  # None = 158 others + 3 Others
    with (shared_data / "casme3_part_a_annotations.csv").open() as f:
        htnet = list(csv.DictReader(f))
    # HTNet's 687-sample table is the sheet minus "others" minus 12 rows (spNO.186, spNO.217 and
    # three of spNO.9's): every one of its rows is in the sheet with the same 3-class label.
    sheet = {(r["Subject"], r["Filename"], r["Onset"], r["Apex"]): cde_label("casme3", r["emotion"]) for r in rows}
    names = ("negative", "positive", "surprise")
    assert all(sheet[(h["Subject"], h["Filename"], h["Onset"], h["Apex"])] == names[int(h["label_for_3"])]
               for h in htnet)
    assert sum(v is not None for v in sheet.values()) - len(htnet) == 12
