"""The spotter on the live path: scenario clips through the real tracker and spotter, and the real
CASME II clip through epir-live."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.fidelity import moving_head
from benchmarks.spotting_bench import iou, load_faces, padded_real_clip, real_clip, spot_frames
from benchmarks.spotting_scenarios import Motion, Scenario, distractor_clip, enlarged, micro_clip, render
from epir_core.preprocess import FaceLocator


@pytest.fixture(scope="module")
def locator():
    with FaceLocator() as loc:
        yield loc


@pytest.fixture(scope="module")
def faces(locator, shared_data) -> list:
    """Two people of the composite, from different databases."""
    return load_faces(shared_data, 2, locator)


def hits(spots, scenario: Scenario) -> list[bool]:
    return [any(iou((s.onset, s.offset), (t[0], t[2])) >= 0.5 for s in spots) for t in scenario.truth()]


@pytest.mark.parametrize(("fps", "size"), [(30.0, 1.0), (200.0, 1.0), (30.0, 2.0)],
                         ids=["30 fps", "200 fps", "30 fps, 1280x960"])
def test_subtle_expressions_of_two_people_are_found_at_their_apex(faces, locator, fps, size):
    """2-3 px on a 260 px face, a blink between each, head sway, light drift and noise; at 1280x960
    the face is 520 px and moves twice as many pixels (the spotter measures it shrunk)."""
    for n, (name, face, landmarks) in enumerate(faces):
        scenario = enlarged(micro_clip(name, face, landmarks, fps, (2.0, 3.0), seed=n), size)
        spots, *_ = spot_frames(render(scenario), fps, locator)
        assert all(hits(spots, scenario)), (name, [(s.onset, s.apex, s.offset) for s in spots], scenario.truth())
        # The blinks give nothing; a stray event just over the bar may (precision 1.00 in
        # epir-bench --spotting on OpenCV 4.11; OpenCV 5 once gave one), one per clip at most.
        assert len(spots) - len(scenario.truth()) <= 1
        for onset, apex, offset, *_ in scenario.truth():
            found = next(s for s in spots if iou((s.onset, s.offset), (onset, offset)) >= 0.5)
            assert abs(found.apex - apex) <= max(2, round(0.07 * fps))


def test_expressions_are_found_on_a_face_the_frame_cuts_off_below(faces, locator):
    """The frame's bottom edge cuts the chin off (the clip moved 140 px down; the sway takes the face
    in and out): what frame i does not show must hold no motion, and the mouth and brows near the
    edge must still be measured. A version that left every landmark within LK's top-level window
    of the edge unmeasured missed events here."""
    for n, (name, face, landmarks) in enumerate(faces):
        scenario = micro_clip(name, face, landmarks, 30.0, (2.0, 3.0), seed=n)
        low = np.float32([[1, 0, 0], [0, 1, 140]])
        frames = (cv2.warpAffine(f, low, f.shape[1::-1], borderMode=cv2.BORDER_REPLICATE) for f in render(scenario))
        spots, *_ = spot_frames(frames, 30.0, locator)
        assert all(hits(spots, scenario)), (name, [(s.onset, s.apex, s.offset) for s in spots], scenario.truth())
        assert len(spots) - len(scenario.truth()) <= 1


def test_a_held_apex_is_placed_at_the_start_of_its_hold(faces, locator):
    """Micro-expressions that hold their apex for 0.1-0.28 s at 200 fps. Frames j-k and j+k are alike
    only late in a hold, where the run peaks; the apex was placed there (12 frames late on this clip,
    16 in the median of epir-bench --spotting's held clips at 200 fps), and the onset, searched in
    the k frames before it, could fall inside the rise."""
    name, face, landmarks = faces[0]
    scenario = micro_clip(name, face, landmarks, 200.0, (2.0, 3.0), seed=0, held=True)
    spots, *_ = spot_frames(render(scenario), 200.0, locator)
    assert all(hits(spots, scenario)), ([(s.onset, s.apex, s.offset) for s in spots], scenario.truth())
    for onset, apex, offset, *_ in scenario.truth():
        found = next(s for s in spots if iou((s.onset, s.offset), (onset, offset)) >= 0.5)
        # The onset is the last frame still bound_fraction (0.9) away from the apex: in the rise's first third.
        assert abs(found.apex - apex) <= 10 and found.onset <= onset + (apex - onset) // 3, (found, scenario.truth())


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_expressions_that_come_back_only_halfway_are_found_when_the_clip_ends_at_the_offset(faces, locator, fps):
    """A brow raise and a smile (3 px) that fall back only halfway and stay there, the clip ending at
    the smile's offset, as a database clip ends at its coded offset (CASME II sub01's clips end with
    a quarter to three quarters of their peak's motion left). Frames j-k and j+k then differ by half the apex's motion,
    which the return test once took for a lasting change; and the smile's apex, 0.15 s before the
    clip's end, is scored only by Spotter.finish."""
    for name, face, landmarks in faces:
        motions = (Motion("brow raise", 2.5, 0.1, 0.0, 0.15, 3.0, rest=0.5),
                   Motion("smile", 4.5, 0.1, 0.0, 0.15, 3.0, rest=0.5))
        scenario = Scenario("halfway back", face, landmarks, fps, 4.75, motions)
        spots, *_ = spot_frames(render(scenario), fps, locator)
        assert all(hits(spots, scenario)) and len(spots) == 2, (name, [(s.onset, s.apex, s.offset) for s in spots],
                                                                scenario.truth())


def test_an_expression_that_eases_back_slowly_is_found(faces, locator):
    """A smile (3 px) that rises in 0.2 s and eases back over 1.2 s: CAS(ME)^3's coded micro-expressions
    take a median 0.47 s from apex to offset, and 44 % over 0.5 s. k frames after the apex the face has
    barely begun to return, so no frame passes the return test (the previous build found nothing); it
    is an event once its face is back a third of the way. Its apex comes from the run's frames, where
    c_j = min(s_j, s_{j+k}) is high, which end inside the rise: up to 3 frames early (taking the peak
    of s after them gave false events in epir-bench --spotting)."""
    for name, face, landmarks in faces:
        scenario = Scenario("easing back", face, landmarks, 30.0, 4.5, (Motion("smile", 2.5, 0.2, 0.0, 1.2, 3.0),))
        spots, *_ = spot_frames(render(scenario), 30.0, locator)
        (onset, apex, offset, *_), found = scenario.truth()[0], [(s.onset, s.apex, s.offset) for s in spots]
        assert len(spots) == 1, (name, found, scenario.truth())
        assert -3 <= spots[0].apex - apex <= 1 and apex < spots[0].offset <= offset, (name, found, scenario.truth())


def test_a_brief_frown_as_a_smile_spreads_is_found(faces, locator):
    """A 2 px frown whose apex comes as a smile begins to spread (20 px over 1 s, then held), as a
    smile masks a leaked expression. Just after the frown's apex the smile moves the face more than
    the frown did, but none of those frames can be an apex (the smile does not come back), and the
    run, the frown and the smile's rise together, outlasts 0.5 s. The previous build waited for the
    smile's frames and dropped the run: no event. On real frames, CASME II sub01 EP19_06f at 67 fps,
    whose brows move on after coming part of the way back, was lost that way. The apex is found within
    a frame, as on epir-bench --spotting's brief clips at 30 fps (exact here, one frame late on CI's
    OpenCV 5 stack)."""
    for name, face, landmarks in faces:
        motions = (Motion("frown", 2.5, 0.1, 0.0, 0.2, 2.0), Motion("held smile", 2.55, 1.0, 3.0, 0.0, 20.0))
        scenario = Scenario("masked frown", face, landmarks, 30.0, 5.0, motions)
        spots, *_ = spot_frames(render(scenario), 30.0, locator)
        (onset, apex, offset, *_), found = scenario.truth()[0], [(s.onset, s.apex, s.offset) for s in spots]
        assert len(spots) == 1 and abs(spots[0].apex - apex) <= 1 and all(hits(spots, scenario)), (name, found)
        assert "brow" in spots[0].regions[0], (name, spots[0].regions)


def test_talking_for_a_long_time_does_not_lock_the_spotter(faces, locator):
    """20 s of talking (a rising baseline that once froze the threshold and kept a run open for
    good), then a brow raise: no event while talking, and the brow raise is found."""
    name, face, landmarks = faces[0]
    motions = (Motion("talk", 2.0, 0.2, 18.0, 0.2, 4.0, cycles_hz=4.0), Motion("brow raise", 22.0, 0.1, 0.0, 0.2, 3.0))
    scenario = Scenario("talk then brow", face, landmarks, 30.0, 23.5, motions)
    spots, *_ = spot_frames(render(scenario), 30.0, locator)
    assert [s for s in spots if s.apex < 21 * 30] == []
    assert all(hits(spots, scenario))
    assert any("brow" in region for region in spots[-1].regions)


def test_talking_a_held_smile_a_head_turn_blinks_and_a_light_change_give_no_event(faces, locator):
    """epir-bench --spotting's distractor clip (20 s, no micro-expression) on two people: the first
    syllables of talking, the quick 6 degree turn and the blinks once gave false events."""
    for n, (name, face, landmarks) in enumerate(faces):
        scenario = distractor_clip(name, face, landmarks, 30.0, seed=100 + n)
        spots, *_ = spot_frames(render(scenario), 30.0, locator)
        assert spots == [], (name, [(s.apex / 30.0, s.regions) for s in spots])


def test_the_real_casme2_clip_gives_its_event(shared_data, locator):
    result = real_clip(shared_data, locator, progress=lambda _: None)
    assert result["status"] == "found", result


@pytest.mark.parametrize("step", [(0, 0), (1, 1), (0, 3)],
                         ids=["still head", "head moving", "head moving out of the frame"])
def test_epir_live_labels_the_real_clip_as_the_composite_does(shared_data, tmp_path, step):
    """The raw CASME II clip of a sample the shipped model was trained on, with a still lead-in of
    fresh sensor noise and nothing after it, read as frames at the camera's 200 fps: one event,
    labelled positive (the clip ends 0.18 s after the apex: the event comes from Spotter.finish). Also
    with the head moving a whole pixel right and down per frame while the expression plays (200 px/s,
    no resampling): without registering the apex on the head, that event was labelled negative. And
    with the head moving 3 px down per frame, so that the chin leaves the frame before the apex: while
    the spotter measured the frame's replicated border as face, its event came late and negative.
    The frames are named as CASME II names them (img46.png, unpadded: img99 comes before img100)."""
    from typer.testing import CliRunner

    from realtime.cli import app

    clip, lead, length = padded_real_clip(shared_data, fps=200.0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(moving_head(clip, lead, length, step)):
        cv2.imwrite(str(folder / f"img{46 + i}.png"), frame)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["--frames", str(folder), "--fps", "200", "--no-display", "--output", str(out)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    inside = [e for e in events if lead <= e["apex_frame"] < lead + length]
    assert inside and inside[0]["label"] == "positive", events
