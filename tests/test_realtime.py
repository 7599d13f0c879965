"""epir-live end to end on synthetic clips made from the shipped portrait: spotting, recognition, outputs and
exit codes. The checkpoint is an untrained model (its label is arbitrary; the pipeline is real)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from epir_core.exit_codes import ExitCode
from realtime.cli import app
from realtime.sources import SourceSpec
from tests.fixtures_data import CLASSES, write_clip

REPO = Path(__file__).resolve().parents[1]


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
    assert "left mouth corner" in e["moved"] or "right mouth corner" in e["moved"]  # where the warp was
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["fps"] == truth.fps and meta["backend"]["name"] == "torch"
    assert meta["model"]["class_names"] == list(CLASSES) and meta["recipe"]["flow"] == "tvl1"
    assert meta["summary"]["status"] == "done" and meta["summary"]["frames_processed"] == truth.frames
    assert meta["summary"]["spotter_warm"] and "lead-in" not in result.stderr


def test_a_clip_too_short_to_spot_says_so(checkpoint, tmp_path):
    """A database clip starts at its onset and lasts a fraction of a second, shorter than the spotter's
    warm-up: the run ends well with no event, and says why on stderr instead of a bare "0 events"."""
    write_clip(tmp_path / "clip", [f"img{i}.jpg" for i in range(40)], peak=20)
    result = live("--frames", str(tmp_path / "clip"), "--fps", "200", "--model", str(checkpoint),
                  "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "events.jsonl").read_text() == ""
    assert "0 events; the spotter reports nothing in a face's first 1.9 s" in result.stderr
    assert "still lead-in" in result.stderr
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["summary"]["spotter_warm"] is False


def test_head_drift_alone_gives_no_event(clips, checkpoint, tmp_path):
    result = live("--video", clips["drift"].path, "--model", str(checkpoint), "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "events.jsonl").read_text() == ""
    rows = read_frames_csv(tmp_path)
    scores = [float(r["score"]) for r in rows if r["score"]]
    assert len(scores) > 60 and max(scores) < 10  # the score was computed, it just never crossed the threshold
    # Each region's own motion is in frames.csv, for users to plot.
    mouth = [float(r["motion_left_mouth_corner"]) for r in rows if r["motion_left_mouth_corner"]]
    assert len(mouth) > 100 and max(mouth) < 0.01  # face widths: head drift is not the face's own motion


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
    "args", [[], ["--camera", "0", "--video", "x.mp4"], ["--video", "x.mp4", "--annotate"], ["--video", "x.mp4", "--backend", "fast"],
             ["--video", "x.mp4", "--fps", "-5"], ["--video", "x.mp4", "--fps", "0"], ["--video", "x.mp4", "--fps", "nan"]]
)
def test_usage_errors_exit_2(args):
    assert CliRunner().invoke(app, args).exit_code == 2


def test_help_documents_exit_codes():
    text = CliRunner().invoke(app, ["--help"]).output
    assert all(f"  {int(code):<3} {code.meaning[:30]}" in text for code in ExitCode)


def test_a_file_read_as_fast_as_possible_labels_each_event_before_the_next_frame(clips, checkpoint, tmp_path):
    from epir_core.checkpoint import load_checkpoint
    from epir_core.preprocess import FaceLocator
    from epir_core.runtime import ModelCache, RuntimeOptions, make_backend
    from realtime.pipeline import LiveConfig, LivePipeline
    from realtime.recognition import Recognizer
    from realtime.sources import SourceSpec, open_source

    truth = clips["event"]
    ckpt = load_checkpoint(checkpoint)
    backend = make_backend(ckpt.model, "torch", RuntimeOptions(device="cpu"), ModelCache(tmp_path / "cache"))
    source = open_source(SourceSpec("video", str(truth.path)))
    with FaceLocator() as locator:
        recognizer = Recognizer(backend, ckpt.class_names, ckpt.recipe, locator)
        pipeline = LivePipeline(LiveConfig(wait_for_labels=True), source.fps, recognizer)
        labelled_at = [r.frame.index for r in map(pipeline.process, source) if r.events]
        source.close()
        assert pipeline.finish() == []  # nothing was left to wait for at the end
    # Labelled on the frame the spotter fired: at the latest k frames after the event's end (its last
    # score) plus the bridge (the run must stay below threshold that long to end).
    spotter = pipeline.spotter
    assert len(labelled_at) == 1 and truth.apex < labelled_at[0] <= truth.offset + spotter.k + spotter.bridge


# --- failure paths: each ends with one line, a documented exit code and a metadata status ----------


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep every run's model cache (default $XDG_CACHE_HOME/epir-live) inside the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def summary(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text())["summary"]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def live_process(*args: str, **kwargs) -> subprocess.Popen:
    """epir-live in its own process, for what only a real process shows (signals, closed pipes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "realtime.cli", "--no-display", "--backend", "torch", *args],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True, **kwargs)


def test_frames_changing_size_mid_run_exit_3_with_the_reason(checkpoint, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        size = (240, 320, 3) if i < 4 else (120, 160, 3)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full(size, 60, np.uint8))
    out = tmp_path / "out"
    result = live("--frames", str(folder), "--fps", "30", "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == ExitCode.SOURCE and "Traceback" not in result.output
    assert len(error_lines(result)) == 1 and "frame size" in error_lines(result)[0]
    assert summary(out)["status"].startswith("source error: frame 4") and len(read_frames_csv(out)) == 4


def test_a_blocked_camera_exits_3_camera_lost(checkpoint, tmp_path, monkeypatch):
    import threading

    import realtime.session as session
    from realtime.sources import FrameSource

    stuck = threading.Event()

    def blocked_camera(spec):
        spec = SourceSpec("camera", spec.target, read_timeout_s=0.3)
        return FrameSource(spec, lambda: stuck.wait() and None, 30.0, True, lambda: None)

    monkeypatch.setattr(session, "open_source", blocked_camera)
    out = tmp_path / "out"
    result = live("--camera", "0", "--model", str(checkpoint), "--output", str(out))
    stuck.set()
    assert result.exit_code == ExitCode.SOURCE and "camera lost" in error_lines(result)[0], result.output
    assert summary(out)["status"].startswith("source error: camera lost")


def test_an_unexpected_error_exits_1_and_metadata_says_failed(clips, checkpoint, tmp_path, monkeypatch):
    from realtime.pipeline import LivePipeline

    def broken(self, frame):
        raise RuntimeError("boom")

    monkeypatch.setattr(LivePipeline, "process", broken)
    out = tmp_path / "out"
    result = live("--video", clips["event"].path, "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == ExitCode.FAILED and error_lines(result) == ["error: failed: RuntimeError: boom"]
    assert summary(out)["status"] == "failed: RuntimeError: boom"


def test_a_failing_cleanup_step_does_not_cost_the_summary(clips, checkpoint, tmp_path, monkeypatch):
    from epir_core.preprocess import FaceLocator

    original = FaceLocator.close

    def close_then_fail(self):
        original(self)
        raise RuntimeError("cannot close")

    monkeypatch.setattr(FaceLocator, "close", close_then_fail)
    out = tmp_path / "out"
    result = live("--video", clips["drift"].path, "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == 0
    s = summary(out)
    assert s["status"] == "done" and any("close face locator" in p for p in s["cleanup_problems"])
    assert len(read_frames_csv(out)) == clips["drift"].frames  # closed, complete


def test_output_names_what_it_overwrites_and_refuses_symlinks(clips, checkpoint, tmp_path):
    out = tmp_path / "out"
    args = ("--video", clips["drift"].path, "--model", str(checkpoint), "--output", str(out))
    assert live(*args).exit_code == 0
    again = live(*args)
    assert again.exit_code == 0 and "overwriting metadata.json, events.jsonl, frames.csv" in again.stderr

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "events.jsonl").unlink()
    (out / "events.jsonl").symlink_to(victim)
    refused = live(*args)
    assert refused.exit_code == ExitCode.OUTPUT and "symlink" in error_lines(refused)[0]
    assert victim.read_text() == "precious"


def test_an_annotated_video_writer_that_does_not_open_exits_6(clips, checkpoint, tmp_path, monkeypatch):
    import realtime.outputs as outputs

    unopened = cv2.VideoWriter  # called without arguments it opens nothing
    monkeypatch.setattr(outputs.cv2, "VideoWriter", lambda *args: unopened())
    out = tmp_path / "out"
    result = live("--video", clips["drift"].path, "--model", str(checkpoint), "--output", str(out), "--annotate")
    assert result.exit_code == ExitCode.OUTPUT and "--annotate: OpenCV cannot write" in error_lines(result)[0]
    assert summary(out)["status"].startswith("output error: --annotate")


def test_an_unsafe_cache_dir_exits_6(clips, checkpoint, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    result = live("--video", clips["drift"].path, "--model", str(checkpoint), "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.OUTPUT and "writable by group or others" in error_lines(result)[0]


def test_ctrl_c_exits_130_with_status_interrupted(clips, checkpoint, tmp_path):
    out = tmp_path / "out"
    # --realtime: the 4 s clip plays at its own pace, so the run is still going when the signal comes.
    proc = live_process("--video", clips["drift"].path, "--realtime", "--model", str(checkpoint), "--output", str(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "frames.csv").exists() or len(read_frames_csv(out)) < 5:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, stderr[-2000:]
    s = summary(out)
    assert s["status"] == "interrupted" and 5 <= s["frames_processed"] < clips["drift"].frames
    assert len(read_frames_csv(out)) == s["frames_processed"] and "Traceback" not in stderr


def test_a_closed_stdout_under_json_exits_6(clips, checkpoint, tmp_path):
    out = tmp_path / "out"
    proc = live_process("--video", clips["event"].path, "--model", str(checkpoint), "--output", str(out), "--json",
                        stdout=subprocess.PIPE)
    proc.stdout.close()  # the reader went away (like `epir-live --json | head -0`)
    stderr = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == ExitCode.OUTPUT, stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert summary(out)["status"] == "output error: --json: stdout was closed by the reader"
    assert len((out / "events.jsonl").read_text().splitlines()) == 1  # the event is kept in the file


# --- a batch of videos ------------------------------------------------------------------------------


def test_a_batch_skips_a_failing_video_goes_on_and_exits_7(clips, checkpoint, tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "event.mp4").write_bytes(Path(clips["event"].path).read_bytes())
    bad = folder / "[bold]bad.mp4"  # brackets: printed as they are, not read as rich markup
    bad.write_bytes(b"\x00garbage, not a video" * 100)
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "runs"
    result = live("--videos", str(folder), "--model", str(checkpoint), "--output", str(out))
    assert result.exit_code == ExitCode.PARTIAL, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {bad}: cannot open video:{bad}"]
    assert "1 of 2 videos done, 1 events" in result.stderr and "Traceback" not in result.output
    with open(out / "events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    good = str(folder / "sub" / "event.mp4")
    assert [r["video"] for r in rows] == [good] and rows[0]["label"] in CLASSES
    assert abs(int(rows[0]["apex_frame"]) - clips["event"].apex) <= 2
    assert summary(out / "event")["status"] == "done" and (out / "event" / "timeline.png").is_file()
    with open(out / "videos.csv", newline="") as f:
        assert {r["video"]: r["status"] for r in csv.DictReader(f)} == {str(bad): "failed", good: "done"}


def test_repeated_video_options_are_a_batch_with_one_folder_each(clips, checkpoint, tmp_path):
    out = tmp_path / "runs"
    result = live("--video", clips["drift"].path, "--video", clips["drift"].path, "--model", str(checkpoint),
                  "--output", str(out))
    assert result.exit_code == 0, result.output
    assert summary(out / "drift")["status"] == "done" and summary(out / "drift-2")["status"] == "done"
    assert (out / "events.csv").read_text().count("\n") == 1  # the header: head drift has no event


@pytest.mark.parametrize("args", [["--video", "a.mp4", "--video", "b.mp4"], ["--videos", "."],
                                  ["--videos", ".", "--output", "o", "--json"],
                                  ["--videos", ".", "--output", "o", "--camera", "0"]])
def test_a_batch_without_output_or_with_one_source_options_exits_2(args):
    assert CliRunner().invoke(app, args).exit_code == ExitCode.USAGE


def test_a_videos_folder_that_is_missing_or_has_no_video_exits_3(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "none", tmp_path / "empty"):
        result = live("--videos", str(folder), "--output", str(tmp_path / "out"))
        assert result.exit_code == ExitCode.SOURCE and len(error_lines(result)) == 1


def test_an_early_input_gives_the_label_of_the_confirmed_event(clips, checkpoint):
    """The event's recognition started on the spotter's candidate apex gives exactly the event, label
    and probabilities of the one made once the event is confirmed."""
    from realtime import analyze_video
    from realtime.pipeline import LiveConfig

    early = analyze_video(clips["event"].path, model=checkpoint, backend="torch", progress=False)
    late = analyze_video(clips["event"].path, model=checkpoint, backend="torch", progress=False,
                         config=LiveConfig(early_input=False))
    assert len(early) == 1
    strip = lambda e: {k: v for k, v in e.to_dict().items() if k != "latency_ms"}  # noqa: E731
    assert [strip(e) for e in early] == [strip(e) for e in late]
