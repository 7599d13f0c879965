"""python -m train.prepare on tiny fake databases: inputs, index, skipped list, resume, bad options."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.fixtures_data import make_casme2, make_casme3, make_smic
from train.data.prepared import load_prepared
from train.prepare import app

runner = CliRunner()  # click >= 8.2 keeps stderr apart: result.stdout is the --json output


def prepare(*args):
    return runner.invoke(app, [*map(str, args), "--json"])


def read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_casme2_prepares_skips_with_reasons_and_resumes(tmp_path):
    root, out = tmp_path / "casme2", tmp_path / "out"
    make_casme2(root)
    result = prepare("casme2", "--root", root, "--out", out, "--recipe", "paper")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["prepared"], summary["skipped"], summary["apex_max_flow"]) == (3, 2, 1)
    index = {r["sample"]: r for r in read_csv(out / "index.csv")}
    assert set(index) == {"sub01_EP02_01f", "sub01_EP03_02", "sub02_EP05_02"}
    assert (index["sub01_EP02_01f"]["label_cde"], index["sub01_EP02_01f"]["label_sde"]) == ("1", "0")
    assert (index["sub02_EP05_02"]["label_cde"], index["sub02_EP05_02"]["label_sde"]) == ("", "4")
    assert index["sub01_EP03_02"]["apex_source"] == "max-flow"
    assert index["sub01_EP03_02"]["apex_frame"] == "reg_img12.jpg"  # the synthetic clip's peak
    skipped = {r["sample"]: r["reason"] for r in read_csv(out / "skipped.csv")}
    assert "excluded" in skipped["sub02_EP01_11f"] and "no frames" in skipped["sub02_EP09_01"]
    x = np.load(out / "inputs" / "sub01_EP02_01f.npy")
    assert x.shape == (3, 28, 28) and x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    assert json.loads((out / "classes.json").read_text())["sde"][4] == "others"

    # Resume: a lost input is remade, the others are reused untouched.
    (out / "inputs" / "sub01_EP03_02.npy").unlink()
    kept = (out / "inputs" / "sub01_EP02_01f.npy").stat().st_mtime_ns
    summary = json.loads(prepare("casme2", "--root", root, "--out", out, "--recipe", "paper").stdout)
    assert (summary["prepared"], summary["reused"]) == (1, 2)
    assert (out / "inputs" / "sub01_EP02_01f.npy").stat().st_mtime_ns == kept

    cde, sde = load_prepared(out, "cde"), load_prepared(out, "sde")
    assert len(cde) == 2 and len(sde) == 3 and cde.class_names == ("negative", "positive", "surprise")
    assert sde.recipe.flow == "farneback" and cde.inputs.shape == (2, 3, 28, 28)


def test_smic_and_casme3_with_the_composite_recipe(tmp_path):
    make_smic(tmp_path / "smic")
    result = prepare("smic", "--root", tmp_path / "smic", "--out", tmp_path / "o1", "--limit", "2")
    assert result.exit_code == 0 and "maximal flow magnitude" in result.stderr
    rows = read_csv(tmp_path / "o1" / "index.csv")
    assert [r["apex_frame"] for r in rows] == ["image090823.bmp", "image090822.bmp"]
    assert load_prepared(tmp_path / "o1", "cde").recipe.flow == "tvl1"

    make_casme3(tmp_path / "c3")
    summary = json.loads(prepare("casme3", "--root", tmp_path / "c3", "--out", tmp_path / "o2",
                                 "--recipe", "paper").stdout)
    assert summary["prepared"] == 2
    skipped = {r["sample"]: r["reason"] for r in read_csv(tmp_path / "o2" / "skipped.csv")}
    assert skipped["spNO.2_c_30"] == "onset and apex are the same frame"


@pytest.mark.parametrize("args, option", [
    (["casme2", "--out", "OUT"], "--root"),
    (["casme2", "--root", "EMPTY", "--out", "OUT"], "--root"),
    (["casme2", "--root", "MISSING", "--out", "OUT"], "--root"),
    (["samm", "--root", "JUNK", "--out", "OUT"], "--root"),
    (["smic", "--root", "SMIC", "--out", "OUT", "--recipe", "nonsense"], "--recipe"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, option):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "JUNK").mkdir()
    (tmp_path / "JUNK" / "a.txt").write_text("x")
    make_smic(tmp_path / "SMIC")
    result = runner.invoke(app, [str(tmp_path / a) if a.isupper() else a for a in args])  # FOLDER names -> paths
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0]


def test_a_corrupt_annotation_sheet_exits_2_with_one_line(tmp_path):
    make_casme2(tmp_path / "casme2")
    (tmp_path / "casme2" / "CASME2-coding-20140508.xlsx").write_bytes(b"not a spreadsheet")
    result = prepare("casme2", "--root", tmp_path / "casme2", "--out", tmp_path / "o")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_out_made_with_another_recipe_is_refused(tmp_path):
    make_smic(tmp_path / "smic")
    assert prepare("smic", "--root", tmp_path / "smic", "--out", tmp_path / "o", "--limit", "1",
                   "--recipe", "paper").exit_code == 0
    result = prepare("smic", "--root", tmp_path / "smic", "--out", tmp_path / "o", "--limit", "1")
    assert result.exit_code == 6 and "--out" in result.stderr
