"""epir-live end to end on synthetic clips made from the shipped portrait: spotting, recognition, outputs and
exit codes. The checkpoint is an untrained model (its label is arbitrary; the pipeline is real)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from realtime.cli import app
from realtime.demo_clip import ClipSpec, make_clip

CLASSES = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "event": make_clip(folder / "event.mp4", ClipSpec()),
        "drift": make_clip(folder / "drift.mp4", ClipSpec(onset=None)),
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from epir_core import build_model
    from epir_core.checkpoint import save_checkpoint
    from epir_core.preprocess import InputRecipe

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    return save_checkpoint(path, build_model(num_classes=3).eval(), CLASSES, InputRecipe.composite())


def live(*args: str):
    return CliRunner().invoke(app, ["--no-display", "--backend", "torch", *args])


def read_frames_csv(folder: Path) -> list[dict]:
    with open(folder / "frames.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_event_found_at_the_true_apex_with_complete_outputs(clips, checkpoint, tmp_path):
    truth = clips["event"]
    result = live("--video", truth.path, "--model", str(checkpoint), "--output", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(events) == 1
    e = events[0]
    assert abs(e["apex_frame"] - truth.apex) <= 2
    assert abs(e["onset_frame"] - truth.onset) <= 3 and abs(e["offset_frame"] - truth.offset) <= 3
    assert e["onset_frame"] < e["apex_frame"] < e["offset_frame"]
    assert e["apex_s"] == pytest.approx(e["apex_frame"] / truth.fps, abs=1e-3)
    assert e["label"] in CLASSES and e["label"] == max(e["probs"], key=e["probs"].get)
    assert sum(e["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert e["confidence"] == e["probs"][e["label"]]
    assert {"spot", "locate", "input", "inference", "frame_to_label"} <= set(e["latency_ms"])
    # --json: the same events on stdout, one JSON object per line
    assert [json.loads(line) for line in result.stdout.splitlines()] == events

    rows = read_frames_csv(tmp_path)
    assert [int(r["frame"]) for r in rows] == list(range(truth.frames))
    assert all(r["face"] == "1" for r in rows)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["fps"] == truth.fps and meta["backend"]["name"] == "torch"
    assert meta["model"]["class_names"] == list(CLASSES) and meta["recipe"]["flow"] == "tvl1"
    assert meta["summary"]["status"] == "done" and meta["summary"]["frames_processed"] == truth.frames


def test_head_drift_alone_gives_no_event(clips, checkpoint, tmp_path):
    result = live("--video", clips["drift"].path, "--model", str(checkpoint), "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "events.jsonl").read_text() == ""
    motion = [float(r["motion"]) for r in read_frames_csv(tmp_path) if r["motion"]]
    assert len(motion) > 100  # the signal was computed, it just never crossed the threshold


def test_frames_without_a_face_are_recorded_not_fatal(checkpoint, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((240, 320, 3), 40 + i, np.uint8))
    out = tmp_path / "out"
    result = live("--frames", str(folder), "--fps", "30", "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = read_frames_csv(out)
    assert len(rows) == 12 and all(r["face"] == "0" and r["x"] == "" for r in rows)


def test_unreadable_frame_exits_3_keeping_earlier_outputs(clips, checkpoint, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(clips["event"].path)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cap.read()[1])
    cap.release()
    (folder / "005.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = live("--frames", str(folder), "--fps", "30", "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == 3
    assert "cannot read image" in result.stderr
    assert len(read_frames_csv(out)) == 5
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["summary"]["status"].startswith("source error")


@pytest.mark.parametrize("content", [b"", b"\x00garbage, not a video" * 100])
def test_empty_or_corrupt_video_exits_3(checkpoint, tmp_path, content):
    video = tmp_path / "bad.mp4"
    video.write_bytes(content)
    result = live("--video", str(video), "--model", str(checkpoint), "--output", str(tmp_path / "out"))
    assert result.exit_code == 3
    assert "error:" in result.stderr and "Traceback" not in result.output


def test_missing_or_wrong_kind_model_exits_4(clips, tmp_path):
    assert live("--video", clips["event"].path, "--model", str(tmp_path / "none.pt")).exit_code == 4
    not_a_checkpoint = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, not_a_checkpoint)
    result = live("--video", clips["event"].path, "--model", str(not_a_checkpoint))
    assert result.exit_code == 4 and "not an EPIR checkpoint" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit code where CUDA is absent")
@pytest.mark.parametrize("flags", [["--backend", "tensorrt"], ["--device", "cuda"]])
def test_unavailable_backend_or_device_exits_5(clips, checkpoint, flags):
    result = CliRunner().invoke(app, ["--no-display", "--video", clips["event"].path, "--model", str(checkpoint), *flags])
    assert result.exit_code == 5 and "error:" in result.stderr


@pytest.mark.parametrize(
    "args", [[], ["--camera", "0", "--video", "x.mp4"], ["--video", "x.mp4", "--annotate"], ["--video", "x.mp4", "--backend", "fast"]]
)
def test_usage_errors_exit_2(args):
    assert CliRunner().invoke(app, args).exit_code == 2


def test_help_documents_exit_codes():
    text = CliRunner().invoke(app, ["--help"]).output
    assert all(f"  {code}  " in text for code in (0, 2, 3, 4, 5))


def test_a_file_read_as_fast_as_possible_labels_each_event_before_the_next_frame(clips, checkpoint, tmp_path):
    from epir_core.checkpoint import load_checkpoint
    from epir_core.preprocess import FaceLocator
    from realtime.backends import make_backend
    from realtime.pipeline import LiveConfig, LivePipeline
    from realtime.recognition import Recognizer
    from realtime.sources import SourceSpec, open_source

    truth = clips["event"]
    ckpt = load_checkpoint(checkpoint)
    backend = make_backend(ckpt.model, "torch", "cpu", tmp_path, "untrained")
    source = open_source(SourceSpec("video", str(truth.path)))
    with FaceLocator() as locator:
        recognizer = Recognizer(backend, ckpt.class_names, ckpt.recipe, locator)
        pipeline = LivePipeline(LiveConfig(wait_for_labels=True), source.fps, recognizer)
        labelled_at = [r.frame.index for r in map(pipeline.process, source) if r.events]
        source.close()
        assert pipeline.finish() == []  # nothing was left to wait for at the end
    # Labelled on the frame the spotter fired: k frames after the event's end at the latest.
    assert len(labelled_at) == 1 and truth.apex < labelled_at[0] <= truth.offset + pipeline.spotter.k + 1
