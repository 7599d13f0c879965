"""The Python API (analyze_video, stream, analyze_videos), the event tables and the timeline PNG, on
synthetic clips made from a real face with an untrained checkpoint (labels arbitrary, pipeline real)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest

import realtime
from realtime.pipeline import Event
from realtime.sources import SourceError, array_source, read_video
from realtime.timeline import draw_timeline
from tests.fixtures_data import CLASSES


@pytest.fixture(scope="module")
def analyzer(checkpoint, tmp_path_factory):
    return realtime.Analyzer(checkpoint, backend="torch", device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def video_events(clips, analyzer, tmp_path_factory) -> tuple[list[Event], object]:
    out = tmp_path_factory.mktemp("run")
    return realtime.analyze_video(clips["event"].path, progress=False, output=out, analyzer=analyzer), out


def without_timing(event: Event) -> dict:
    d = asdict(event)
    del d["latency_ms"]
    return d


def test_analyze_video_returns_events_with_every_field(clips, video_events):
    truth = clips["event"]
    events, out = video_events
    assert len(events) == 1
    e = events[0]
    assert abs(e.apex_frame - truth.apex) <= 2 and e.onset_frame < e.apex_frame < e.offset_frame
    assert (e.onset_s, e.apex_s, e.offset_s) == pytest.approx((e.onset_frame / 30, e.apex_frame / 30, e.offset_frame / 30), abs=1e-3)
    assert e.label in CLASSES and e.label == max(e.probs, key=e.probs.get) and e.confidence == e.probs[e.label]
    assert sum(e.probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert len(e.box) == 4 and all(isinstance(v, int) for v in e.box) and e.box[2] > 0 and e.box[3] > 0
    assert e.latency_ms["explain"] > 0
    # Regions: the input cells of the DTSM tokens, heaviest first, weights summing to 1
    assert 1 <= len(e.regions) < 16
    weights = [r["weight"] for r in e.regions]
    assert weights == sorted(weights, reverse=True) and sum(weights) == pytest.approx(1.0, abs=1e-3)
    for r in e.regions:
        x0, y0, x1, y1 = r["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and (x0, y0) == (r["col"] / 4, r["row"] / 4)
    # to_frame puts the aligned input back on the onset's face: its centre falls in the face box
    cx, cy = np.array(e.to_frame) @ (0.5, 0.5, 1.0)
    x, y, w, h = e.box
    assert x < cx < x + w and y < cy < y + h
    # The run folder holds the same events, and the timeline
    lines = (out / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(e.to_dict())) for e in events]
    assert (out / "timeline.png").stat().st_size > 10_000


def test_analyze_video_loads_a_model_by_path(clips, checkpoint):
    events = realtime.analyze_video(clips["drift"].path, model=checkpoint, backend="torch", device="cpu", progress=False)
    assert events == []  # head drift alone


def test_stream_over_frames_in_memory_yields_the_same_events(clips, analyzer, video_events):
    frames = read_video(clips["event"].path)
    streamed = list(realtime.stream(iter(frames), fps=clips["event"].fps, analyzer=analyzer))
    assert [without_timing(e) for e in streamed] == [without_timing(e) for e in video_events[0]]


def test_stopping_a_stream_closes_its_outputs(clips, analyzer, tmp_path):
    events = realtime.stream(clips["event"].path, output=tmp_path, analyzer=analyzer)
    first = next(events)
    events.close()  # what a `break` out of the for loop does
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["summary"]["status"] == "stopped" and meta["summary"]["events"] == 1
    assert meta["summary"]["frames_processed"] < clips["event"].frames
    assert json.loads((tmp_path / "events.jsonl").read_text()) == json.loads(json.dumps(first.to_dict()))


def test_batch_reports_a_corrupt_video_and_goes_on(clips, analyzer, video_events, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00garbage, not a video" * 100)
    missing = tmp_path / "missing.mp4"
    videos = [str(corrupt), clips["event"].path, str(missing)]
    result = realtime.analyze_videos(videos, tmp_path / "out", progress=False, analyzer=analyzer)

    assert set(result.failed) == {str(corrupt), str(missing)}
    assert all(reason and "\n" not in reason for reason in result.failed.values())
    err = capsys.readouterr().err
    assert err.count("failed:") == 2 and "Traceback" not in err
    good = clips["event"].path
    assert [without_timing(e) for e in result.events[good]] == [without_timing(e) for e in video_events[0]]
    assert (result.folders[good] / "timeline.png").is_file() and (result.folders[good] / "events.jsonl").is_file()
    with open(result.summary, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["video"] for r in rows] == [good]
    assert rows[0]["label"] == result.events[good][0].label and rows[0]["regions"]
    assert float(rows[0][f"p_{rows[0]['label']}"]) == result.events[good][0].confidence
    with open(tmp_path / "out" / "videos.csv", newline="") as f:
        status = {r["video"]: r["status"] for r in csv.DictReader(f)}
    assert status == {str(corrupt): "failed", good: "done", str(missing): "failed"}


def test_batch_folders_are_unique_per_video_name(tmp_path):
    from realtime.api import _folder_names

    names = [f.name for f in _folder_names(["a/clip.mp4", "b/clip.mp4", "clip-2.avi", "c/clip.mov"], tmp_path)]
    assert names == ["clip", "clip-2", "clip-2-2", "clip-3"]


def test_find_videos_is_recursive_and_ignores_other_files(tmp_path):
    for name in ("a.mp4", "sub/b.MOV", "sub/deeper/c.avi", "notes.txt", "sub/frame.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in realtime.find_videos(tmp_path)] == [
        "a.mp4", "sub/b.MOV", "sub/deeper/c.avi"]


def test_frames_in_memory_must_be_bgr_images_with_a_rate():
    with pytest.raises(SourceError, match="frame rate"):
        array_source([], fps=None)
    source = array_source([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], fps=30)
    with pytest.raises(SourceError, match="frame 1 is not"):
        list(source)


def _event(onset: float, apex: float, offset: float, label: str, accepted: bool = True) -> Event:
    return Event(round(onset * 30), round(apex * 30), round(offset * 30), onset, apex, offset, label,
                 {label: 0.8, "other": 0.2}, 0.8, accepted, motion_score=6.5, threshold=4.0, moved=("mouth",),
                 box=(10, 20, 100, 120), latency_ms={},
                 regions=[{"row": 2, "col": 1, "weight": 0.7, "box": [0.25, 0.5, 0.5, 0.75]},
                          {"row": 0, "col": 0, "weight": 0.3, "box": [0.0, 0.0, 0.25, 0.25], "name": "left brow"}],
                 to_frame=((100.0, 0.0, 10.0), (0.0, 120.0, 20.0)))


def test_event_tables_round_trip(tmp_path):
    events = [_event(1.0, 1.1, 1.3, "positive"), _event(2.0, 2.2, 2.4, "negative", accepted=False)]
    realtime.write_events_jsonl(events, tmp_path / "e.jsonl")
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(e.to_dict())) for e in events]
    realtime.write_events_csv(events, tmp_path / "e.csv", class_names=("negative", "positive", "other"))
    with open(tmp_path / "e.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["positive", "negative"] and rows[1]["accepted"] == "False"
    assert rows[0]["p_positive"] == "0.8" and rows[0]["p_negative"] == "" and rows[0]["width"] == "100"
    assert rows[0]["regions"] == "r2c1=0.700 left brow=0.300"


def test_timeline_draws_every_motion_column_threshold_and_events(tmp_path):
    t = np.arange(300) / 30
    motion = 0.002 + 0.01 * np.exp(-((t - 4) ** 2) / 0.02)
    motion[100:110] = np.nan  # a face lost for a moment
    threshold = np.where(t < 1, np.nan, 0.006)
    columns = {"time_s": t, "motion": motion, "motion_mouth": motion * 0.5, "threshold": threshold}
    events = [_event(3.8, 4.0, 4.2, "positive"), _event(8.0, 8.1, 8.3, "surprise", accepted=False)]
    png = draw_timeline(columns, events, tmp_path / "timeline.png", title="clip.mp4")
    image = cv2.imread(str(png))
    assert image.shape == (440, 1600, 3)

    def has(colour) -> bool:
        return bool(np.any(np.all(np.abs(image.astype(int) - colour) <= 12, axis=-1)))

    from realtime.timeline import EVENT, PALETTE, RED

    assert has(PALETTE[0]) and has(PALETTE[1]) and has(RED) and has(EVENT)
    # The same drawing from frames.csv rows (strings, empty cells unknown)
    rows = [{k: ("" if np.isnan(v[i]) else str(v[i])) for k, v in columns.items()} for i in range(len(t))]
    again = cv2.imread(str(draw_timeline(rows, events, tmp_path / "again.png", title="clip.mp4")))
    assert np.array_equal(again, image)
    with pytest.raises(ValueError, match="motion"):
        draw_timeline({"time_s": t, "threshold": threshold}, events, tmp_path / "none.png")

