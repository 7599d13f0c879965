"""Parts of epir-live on their own: the capture ring buffer, the causal spotter, the recognition queue."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from realtime.sources import FrameSource, SourceError, SourceSpec
from realtime.spotting import Spotter, SpotterConfig


def counting_reader(n: int, shape=(4, 4, 3)):
    count = iter(range(n))

    def read():
        i = next(count, None)
        return None if i is None else np.full(shape, i % 256, np.uint8)

    return read


def test_live_source_drops_and_counts_when_the_consumer_is_slow():
    spec = SourceSpec("video", "fake", realtime=True, buffer_frames=2)
    source = FrameSource(spec, counting_reader(300), fps=3000.0, live=True, close=lambda: None)
    seen = []
    for frame in source:
        seen.append(frame.index)
        time.sleep(0.005)  # much slower than the 3000 fps producer
    assert source.dropped > 0 and len(seen) + source.dropped == 300
    assert seen == sorted(seen) and seen[-1] == 299  # oldest dropped, newest kept


def test_file_source_blocks_instead_of_dropping():
    spec = SourceSpec("video", "fake", buffer_frames=2)
    source = FrameSource(spec, counting_reader(50), fps=30.0, live=False, close=lambda: None)
    frames = []
    for frame in source:
        frames.append(frame)
        time.sleep(0.001)
    assert [f.index for f in frames] == list(range(50)) and source.dropped == 0
    assert frames[30].time_s == pytest.approx(1.0)


def test_a_camera_that_stops_delivering_is_a_source_error_after_its_frames():
    from realtime.sources import SourceError

    source = FrameSource(SourceSpec("camera", "0"), counting_reader(3), fps=30.0, live=True, close=lambda: None)
    seen = []
    with pytest.raises(SourceError, match="stopped delivering"):
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1, 2]


def feed(spotter: Spotter, frames: list[np.ndarray], candidates: list | None = None) -> list[tuple[int, object]]:
    """(frame it came on, Spot) for each event; `candidates` gets the spotter's candidate after each
    frame. Frames of a still head whose landmarks are the composite's mean face on the 128 px image."""
    import json

    from epir_core.preprocess import Face
    from epir_core.preprocess.align import TEMPLATE_PATH
    from realtime.tracking import TrackedFace

    mean_face = np.array(json.loads(TEMPLATE_PATH.read_text())["mean_face"])  # 468 x 2 fractions
    tracked = TrackedFace(Face.from_landmarks(8 + 112 * mean_face), np.eye(2, 3), track=1)
    events = []
    for i, frame in enumerate(frames):
        spot = spotter.update(i, frame, tracked)
        if candidates is not None:
            candidates.append(spotter.candidate)
        if spot is not None:
            events.append((i, spot))
    return events


def textured(rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(rng.uniform(0, 255, (128, 128)).astype(np.float32), (0, 0), 1.5).astype(np.uint8)


MOUTH_CORNER = np.s_[80:104, 76:104]  # round the left mouth corner (image right) of feed's face
CHIN = np.s_[94:120, 48:80]


def moved(base: np.ndarray, amount: float, rng: np.random.Generator, patch=MOUTH_CORNER) -> np.ndarray:
    """base with `patch` moved up by `amount` px (down if negative), and sensor noise: a local
    motion on a still face."""
    import cv2

    out = base.astype(np.float32)
    if amount:
        shifted = cv2.warpAffine(base, np.float32([[1, 0, 0], [0, 1, -amount]]), base.shape[::-1],
                                 borderMode=cv2.BORDER_REFLECT)
        out[patch] = shifted[patch]
    return np.clip(out + rng.normal(0, 1.0, out.shape), 0, 255).astype(np.uint8)


def test_spotter_finds_a_brief_local_motion_where_it_was_and_ignores_a_lasting_one():
    rng = np.random.default_rng(0)
    base = textured(rng)
    fps, n = 30.0, 110
    brief = [moved(base, 2.0 if 70 <= i <= 73 else 0.0, rng) for i in range(n)]
    lasting = [moved(base, 2.0 if i >= 70 else 0.0, rng) for i in range(n)]
    spots = [spot for _, spot in feed(Spotter(SpotterConfig(), fps), brief)]
    assert len(spots) == 1 and 69 <= spots[0].apex <= 74, spots
    assert spots[0].onset < spots[0].apex < spots[0].offset
    assert "left mouth corner" in spots[0].regions
    assert feed(Spotter(SpotterConfig(), fps), lasting) == []


def test_a_brief_expression_is_confirmed_k_frames_after_its_apex_and_a_mouth_opening_once_its_run_ends():
    """The label's wait: a mouth corner held moved for frames 70-73 gives its event as soon as the
    return is scored (k frames after the hold's last frame), with the hold's first frame as apex, and
    its candidate (for the early input) before that; the jaw dropping, which speech does too, waits
    until the run has ended, bridge included."""
    rng = np.random.default_rng(1)
    base = textured(rng)
    for patch, amount in ((MOUTH_CORNER, 2.0), (CHIN, -2.0)):
        spotter = Spotter(SpotterConfig(), 30.0)
        frames = [moved(base, amount if 70 <= i <= 73 else 0.0, rng, patch) for i in range(110)]
        candidates = []
        [(came, spot)] = feed(spotter, frames, candidates)
        assert 69 <= spot.apex <= 74
        if patch is MOUTH_CORNER:
            assert spot.apex == 70 and came <= 73 + spotter.k
            assert candidates[came - 1] == (spot.onset, spot.apex)
            assert next(i for i, c in enumerate(candidates) if c is not None) < came
        else:
            assert spot.regions[0] in ("chin", "upper lip")
            assert came >= 73 + spotter.k + spotter.bridge


def test_spotter_windows_follow_the_frame_rate():
    slow, fast = Spotter(SpotterConfig(gap_s=0.2), 30.0), Spotter(SpotterConfig(gap_s=0.2), 200.0)
    assert (slow.k, fast.k) == (6, 40)
    assert fast.max_run == round(0.5 * 200)


def test_a_camera_read_that_blocks_times_out_as_camera_lost():
    stuck = threading.Event()
    spec = SourceSpec("camera", "0", read_timeout_s=0.2)
    source = FrameSource(spec, lambda: stuck.wait() and None, fps=30.0, live=True, close=lambda: None)
    started = time.perf_counter()
    with pytest.raises(SourceError, match="camera lost"):
        list(source)
    assert time.perf_counter() - started < 5  # the timeout, not the (never ending) read
    stuck.set()
    source.close()


def test_frames_that_change_size_are_a_source_error():
    shapes = iter([(4, 4, 3), (4, 4, 3), (6, 4, 3)])
    spec = SourceSpec("frames", "fake", fps=30.0)
    source = FrameSource(spec, lambda: np.zeros(next(shapes), np.uint8), 30.0, False, lambda: None)
    seen = []
    with pytest.raises(SourceError, match="frame 2 .* is 4x6, earlier frames are 4x4"):
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1]


def test_recognition_queue_is_bounded_and_counts_dropped_events():
    """A spot on every frame while recognition is stuck: at most max_pending events wait (each holds
    three frames), the others are dropped and counted, and the waiting ones still come out."""
    from epir_core.preprocess import Face, FaceBox
    from realtime.pipeline import LiveConfig, LivePipeline
    from realtime.recognition import Recognition
    from realtime.sources import Frame
    from realtime.tracking import TrackedFace

    release = threading.Event()
    tracked = TrackedFace(Face(FaceBox(0, 0, 8, 8)), np.eye(2, 3), track=1)

    class SlowRecognizer:  # the recognizer's interface, stuck until released
        def __call__(self, onset, apex, face):
            release.wait()
            return Recognition("positive", {"positive": 1.0}, 1.0, face.box, {})

    class EverySpot:  # the spotter's interface: a spot (onset = apex = offset) on every frame
        score = threshold = 0.0
        region_motion = np.zeros(3)
        history_frames = 4
        candidate = None

        def update(self, index, grey, tracked):
            return SimpleNamespace(onset=index, apex=index, offset=index, score=1.0, threshold=0.5, regions=())

        def finish(self):
            return []

    pipeline = LivePipeline(LiveConfig(max_pending=2), 30.0, SlowRecognizer())
    pipeline.spotter = EverySpot()
    pipeline.tracker.update = lambda grey, image: tracked
    for i in range(10):
        pipeline.process(Frame(i, i / 30, np.zeros((8, 8, 3), np.uint8), time.perf_counter()))
    assert pipeline.dropped_events == 8
    release.set()
    assert [e.apex_frame for e in pipeline.finish()] == [0, 1]


# --- the explanation regions put back on the frame -------------------------------------------------


def test_input_to_frame_puts_the_aligned_face_back_where_it_was():
    """A face placed in the frame by a known similarity: each landmark's place in the aligned input
    (the template's mean face, fractions) maps back onto the landmark in the frame."""
    import json

    from epir_core.preprocess import Face, InputRecipe
    from epir_core.preprocess.align import TEMPLATE_PATH
    from realtime.recognition import input_to_frame

    recipe = InputRecipe.composite()
    mean_face = np.array(json.loads(TEMPLATE_PATH.read_text())["mean_face"])  # 468 x 2, fractions of the crop
    angle, scale, shift = np.deg2rad(12), 1.7, np.array([210.0, 95.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (mean_face * (recipe.crop_width, recipe.crop_height)) @ rotation.T + shift
    to_frame = input_to_frame(recipe, Face.from_landmarks(landmarks))
    mapped = np.c_[mean_face, np.ones(len(mean_face))] @ to_frame.T
    assert np.abs(mapped - landmarks).max() < 1.0  # pixels


def test_input_to_frame_of_a_box_recipe_spans_the_crop_of_the_box():
    from epir_core.preprocess import Face, FaceBox, InputRecipe
    from realtime.recognition import input_to_frame

    recipe = InputRecipe(face_margin=0.1)  # align="box"
    face = Face(FaceBox(100, 50, 120, 140))
    crop = face.box.scaled(aspect=recipe.crop_width / recipe.crop_height, margin=0.1)
    corners = np.array([[0, 0, 1], [1, 1, 1]]) @ input_to_frame(recipe, face).T
    assert np.allclose(corners, [[crop.x, crop.y], [crop.x + crop.width, crop.y + crop.height]])


def test_overlay_outlines_the_latest_events_regions_on_the_face_for_a_while():
    from realtime.display import MAGENTA, Overlay
    from realtime.pipeline import Event, FrameResult
    from realtime.sources import Frame

    event = Event(10, 12, 15, 0.33, 0.4, 0.5, "positive", {"positive": 0.9}, 0.9, True, 6.0, 4.0, ("mouth",),
                  (50, 40, 100, 120), {"frame_to_label": 80.0},
                  regions=[{"row": 0, "col": 0, "weight": 0.6, "box": [0.0, 0.0, 0.5, 0.5], "name": "left brow"},
                           {"row": 1, "col": 1, "weight": 0.4, "box": [0.5, 0.5, 1.0, 1.0]}],
                  to_frame=((100.0, 0.0, 400.0), (0.0, 120.0, 200.0)))  # input (x, y) -> (400 + 100x, 200 + 120y)
    overlay = Overlay(fps=30.0, regions_s=1.0)

    def draw(t: float, events: list) -> np.ndarray:
        frame = Frame(round(t * 30), t, np.zeros((480, 640, 3), np.uint8), 0.0)
        return overlay.draw(FrameResult(frame, None, float("nan"), float("nan"), np.zeros(1), events, {}), {})

    def colour_at(image: np.ndarray, x: int, y: int) -> tuple:
        return tuple(int(v) for v in image[y, x])

    shown = draw(1.0, [event])
    assert colour_at(shown, 425, 200) == MAGENTA  # the top edge of the heaviest cell: (400, 200)-(450, 260)
    lighter = colour_at(shown, 475, 260)  # the top edge of the other cell: (450, 260)-(500, 320)
    assert lighter != MAGENTA and lighter != (0, 0, 0)
    assert colour_at(draw(1.9, []), 425, 200) == MAGENTA  # still shown within regions_s
    assert colour_at(draw(2.1, []), 425, 200) == (0, 0, 0)  # then gone
