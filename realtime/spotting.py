"""Causal spotting of micro-expressions in a stream, region by region.

Per frame i and face region R (brows, nose wings, cheeks, mouth corners, lips, chin: regions.py),
s_i^R is the region's own motion between frame i-k and frame i: frame i is first turned back onto
frame i-k by the head's tracked similarity (the tracker's `head`), Lucas-Kanade then follows the
region's landmarks, a small similarity fitted on still landmarks takes what the tracker missed, and
s is the mean distance left on the region's more-moved half, in face widths. Head motion is thus
removed by alignment, and only what moves on the face remains. The apex score of frame j is

    c_j^R = min(s_j^R, s_{j+k}^R)      (frame j differs from both j-k and j+k)

the published "compare i with i-k and i+k" spotter made causal with a lag of k frames: a brief
expression is high on both sides of its apex, while a lasting change (a held smile, a head turn)
is high on one side only. Each region's c is measured against its own noise: z = (c - median) /
robust sigma over the last window_s seconds, less the median z of all regions (what every region
shares is a misfit of the head's motion, not an expression, which is local). There is no fixed
floor, so a still, sharp face reveals motions far below a pixel and a noisy one raises its own bar.

A run is a stretch of frames where some region's z is above threshold (gaps up to bridge_s
bridged). A run no longer than a micro-expression is one event, peaking at the run's highest frame
that is not a blink and whose region, by frame j+k, is back at least a third of the way from
frame j to frame j-k (a drift or a slow release goes on; real faces often stop part of the way
back). Onset, apex and offset are then found on the region that moved most: the onset is the last
still frame in the k before the peak, and the apex the first frame whose motion from the onset
reaches the peak's. For a brief expression that is the peak; one that holds its apex passes the
return test only late in its hold (when j+k is in its fall), and its apex is the hold's start.
A longer run (talking, whose syllables are each brief) is dropped as soon as it is too long, and
every score enters the noise history, so nothing can hold a run open.

Many real micro-expressions rise briefly and ease back slowly: k frames after the apex the face has
barely begun to return, and no frame passes the return test. A run without an apex whose face is
still away from the onset (a brief rise, and nothing else that moved it) waits release_s for the
face to come back a third of the way; the event is reported then, with that frame as its offset.
A held smile does not come back in time.

Waiting for the run to end costs a label time, so an event is confirmed as soon as its peak is
scored (k frames after it) if s peaked there and fell to confirm_fall of the peak within those k
frames, as around a brief expression's apex; unless what moved most is the mouth opening (upper
lip, chin): speech moves those first, and only the run's length tells a syllable from a lip press.
A frame of higher s within those k frames holds the confirmation back only until it is scored: one
that cannot be an apex (a smile spreading after a brief frown, brows that move on) is no later peak.
The peak is the run's frame of highest s, so s, known k frames before c, proposes it as a candidate
one frame after it: the live app starts the event's recognition while the spotter still waits.

A file ends where it ends, often within k frames of an apex (the databases' clips end at the
offset): finish() takes the face to stay as last seen, so that such an event is still reported.

All durations are in seconds and converted with the stream's real frame rate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import cv2
import numpy as np

from epir_core.preprocess.align import bounding_box, compose
from epir_core.preprocess.regions import REGION_NAMES, REGION_OF_POINT, REGION_POINTS
from realtime.tracking import TrackedFace, apply

LK_WINDOW = (15, 15)  # px at the measuring resolution; the face's texture is finer than this
MEASURE_FACE_PX = 360  # a wider face is measured shrunk to this width, so the window covers as much of it
# as of a face at 640x480 (240-352 px in epir-bench --spotting); unshrunk, a face at twice the
# pixels lost its faintest frowns
LK_LEVELS = 1  # pyramid levels above the frame: the head's motion is already warped away
LK_MIN_EIGEN = 5e-4  # a window without texture in some direction (a smooth cheek, the face's edge) is not followed
MAX_MOTION = 0.05  # face widths: no micro-expression moves a point this far (13 px on a 260 px face)
# Landmarks that no micro-expression moves much (eye corners, lower nose bridge and tip, the face's
# sides): what the tracker missed of the head's motion is fitted on them. Forehead and the bridge
# between the eyes are left out: a frown or a brow raise pulls them. The face's sides count only
# where their window has texture (LK_MIN_EIGEN); against a plain background it has none.
ANCHORS = np.array((33, 263, 197, 195, 5, 4, 1, 234, 454, 127, 356, 93, 323, 132, 361))
# Eyelids are measured only to recognise a blink: a brow that moves with a closing lid is no event.
EYELIDS = np.array((159, 145, 386, 374, 158, 385))
_MEASURED = np.concatenate([REGION_POINTS, EYELIDS])
# Speech opens the mouth: an event that moved these most is confirmed only once its run has ended
# short, as a syllable's run does not.
SPEECH_REGIONS = frozenset(("upper lip", "chin"))


@dataclass(frozen=True)
class SpotterConfig:
    gap_s: float = 0.2  # k: about onset-to-apex of a micro-expression; also the detection lag
    window_s: float = 5.0  # history of each region's noise
    warmup_s: float = 1.5  # no event before the noise has this much history
    z: float = 10.0  # threshold, in robust sigmas of a region's own noise
    max_event_s: float = 0.5  # longer runs are not micro-expressions
    bridge_s: float = 0.2  # a run ends after this long below threshold: talking dips between syllables
    returned: float = 1 / 3  # an apex: k frames after it, its region is back this fraction of the way
    blink_ratio: float = 0.75  # eyelids moving this fraction of the most-moved region or more: a blink
    # (a brow close to the eye moves with a closing lid; in the scenarios a brow raise moved the lids
    # at most half as much as the brows)
    bound_fraction: float = 0.9  # onset/offset: last/first frame this close to the neutral side
    apex_fraction: float = 0.95  # apex: first frame whose motion from the onset is this close to the peak's
    confirm_fall: float = 0.5  # a brief apex: its region's s falls to this fraction of the apex's within k frames
    release_s: float = 1.0  # a brief rise is an event if its region is back `returned` of the way within this
    # long after the apex: a fall easing back over 2.5 s gets there in 1 s (cos^2: at 0.39 of the fall), and
    # 97 % of CAS(ME)^3's coded micro-expressions take at most 2.5 s from apex to offset (a held smile: longer)


@dataclass(frozen=True)
class Spot:
    onset: int  # 0-based source frame indices
    apex: int
    offset: int
    score: float  # max z at the apex
    threshold: float
    regions: tuple[str, ...]  # regions above threshold at the apex, most moved first


@dataclass(frozen=True)
class _Release:
    """A brief rise whose face has not come back yet: an event once it does, by `deadline`."""

    onset: int
    apex: int
    region: int  # the region that moved most
    reach: float  # its motion from onset to apex, face widths
    deadline: int  # frame index
    score: float  # max z of s at the rise's peak
    regions: tuple[str, ...]


@dataclass
class _Frame:
    index: int
    gray: np.ndarray
    tracked: TrackedFace


def residual_motion(a: _Frame, b: _Frame, points: np.ndarray) -> np.ndarray:
    """Per landmark in `points`: how far it moved from frame a to frame b beyond the head's motion,
    in face widths of frame a (N,); NaN where LK lost the point or could not follow it.

    Frame b is warped onto a's pixels by the tracked head motion a -> b, so that LK, which assumes a
    window only shifts, sees no turn; LK then follows the anchors and the points; what the tracker
    missed is a small similarity fitted on the anchors alone (RANSAC at half a pixel, so an anchor
    that an expression drags does not bend it), and what the points moved beyond it is theirs.
    Windows without texture in some direction (the face's edge, a smooth cheek) are not followed:
    LK slides along them. LK sees only the face's region, with b's brightness scaled to a's, so a
    light change is not motion.
    """
    chosen = np.concatenate([ANCHORS, points])
    start = a.tracked.face.landmarks[chosen].astype(np.float32)  # N x 2
    scale = min(1.0, MEASURE_FACE_PX / max(a.tracked.face.box.width, 1))  # frame pixel -> measuring pixel
    x0, y0, x1, y1 = bounding_box(start, a.gray.shape, margin=round(2**LK_LEVELS * LK_WINDOW[0] / scale))
    origin = np.array([x0, y0], np.float32)
    tracked_head = compose(b.tracked.head, cv2.invertAffineTransform(a.tracked.head))
    to_b = compose(tracked_head, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))  # patch pixel -> frame b pixel
    patch_a = a.gray[y0:y1, x0:x1]
    size = (x1 - x0, y1 - y0)
    patch_b = cv2.warpAffine(b.gray, to_b, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    # Where the face has left frame b (a person close to the camera, or moving out of it), patch b
    # holds b's replicated border, which neither moves nor has the face's brightness: the brightness
    # is matched on the part of the patch that shows frame b, and the rest takes patch a's pixels,
    # so that it holds no motion (as crop_pair does with the crops).
    bx0, by0, bx1, by1 = _box_in_frame(to_b, b.gray.shape, size)
    if scale < 1.0:
        size = (round(size[0] * scale), round(size[1] * scale))
        patch_a, patch_b = (cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in (patch_a, patch_b))
        bx0, by0, bx1, by1 = math.ceil(bx0 * scale), math.ceil(by0 * scale), int(bx1 * scale), int(by1 * scale)
    seen_a, seen_b = patch_a[by0:by1, bx0:bx1], patch_b[by0:by1, bx0:bx1]
    gain = float(seen_a.mean()) / max(float(seen_b.mean()), 1.0) if seen_a.size else 1.0
    patch_b = cv2.convertScaleAbs(patch_b, alpha=gain)
    if (bx0, by0, bx1, by1) != (0, 0, *size):
        shown, patch_b = patch_b[by0:by1, bx0:bx1], patch_a.copy()
        patch_b[by0:by1, bx0:bx1] = shown
    found, status, _ = cv2.calcOpticalFlowPyrLK(patch_a, patch_b, ((start - origin) * scale).reshape(-1, 1, 2), None,
                                                winSize=LK_WINDOW, maxLevel=LK_LEVELS, minEigThreshold=LK_MIN_EIGEN)
    found, ok = found.reshape(-1, 2) / scale + origin, status.ravel() == 1
    anchors = len(ANCHORS)
    head, _ = cv2.estimateAffinePartial2D(start[:anchors][ok[:anchors]], found[:anchors][ok[:anchors]],
                                          method=cv2.RANSAC, ransacReprojThreshold=0.5 / scale)
    if head is None:  # too few anchors followed: the tracked motion alone
        head = np.eye(2, 3)
    distance = np.linalg.norm(found[anchors:] - apply(head, start[anchors:]), axis=1) / max(a.tracked.face.box.width, 1)
    distance[~ok[anchors:] | (distance > MAX_MOTION)] = np.nan  # lost, or LK settled on something else
    return distance


def _box_in_frame(matrix: np.ndarray, shape: tuple[int, ...], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (x1, y1 exclusive) of the pixels of a patch of `size` that `matrix` (2 x 3, patch
    pixel -> frame pixel) maps inside a frame of `shape`: the axis-aligned box inside the frame's
    preimage, which holds while the map turns by less than 45 degrees (the head between two frames).
    crop_pair asks the same of a crop by warping a mask (align.inside_frame), which is exact at any
    roll; here it runs on every frame, where warping a mask cost 0.2 ms."""
    h, w = shape[:2]
    q = apply(cv2.invertAffineTransform(matrix), np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float))
    x0, x1 = max(0, math.ceil(max(q[0, 0], q[2, 0]))), min(size[0], math.floor(min(q[1, 0], q[3, 0])) + 1)
    y0, y1 = max(0, math.ceil(max(q[0, 1], q[1, 1]))), min(size[1], math.floor(min(q[2, 1], q[3, 1])) + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


# REGION_POINTS laid out as a regions x longest-region table (-1 = no point), for region_motion.
_TABLE = np.full((len(REGION_NAMES), np.bincount(REGION_OF_POINT).max()), -1)
for _r in range(len(REGION_NAMES)):
    _members = np.flatnonzero(REGION_OF_POINT == _r)
    _TABLE[_r, : len(_members)] = _members
_UPPER_HALF = np.bincount(REGION_OF_POINT) - np.bincount(REGION_OF_POINT) // 2  # points in a region's upper half


def region_motion(point_motion: np.ndarray) -> np.ndarray:
    """Per-point motion over REGION_POINTS -> per region, the mean of its more-moved half
    (len(REGION_NAMES),): an expression may move only part of a region, and one badly followed
    point should not make a region move."""
    values = np.where(_TABLE >= 0, point_motion[_TABLE], -np.inf)  # regions x longest
    descending = -np.sort(-values, axis=1)
    upper = np.arange(_TABLE.shape[1]) < _UPPER_HALF[:, None]
    return np.where(upper, descending, 0.0).sum(axis=1) / _UPPER_HALF


@dataclass(frozen=True)
class _Motion:
    """A frame's motion since k frames before."""

    frame: int
    s: np.ndarray  # per region, then the eyelids, face widths
    raw: float  # max z of s over the regions, -inf during a blink
    region: int  # where z of s is highest


@dataclass(frozen=True)
class _Scored:
    """One frame of an open run."""

    motion: _Motion  # the frame's s
    score: float  # max z of c, 0 where the frame cannot be an apex (a blink, not returned)
    z: np.ndarray  # z of c per region, zeroed likewise

    @property
    def frame(self) -> int:
        return self.motion.frame


class Spotter:
    """update(index, gray, tracked) after every frame with a face; reset() when the face is lost."""

    def __init__(self, config: SpotterConfig, fps: float):
        self.config = config
        self.fps = fps
        self.k = max(1, round(config.gap_s * fps))
        self.max_run = max(1, round(config.max_event_s * fps))
        self.bridge = max(1, round(config.bridge_s * fps))
        self.warmup = max(2 * self.k, round(config.warmup_s * fps))
        self.release = max(1, round(config.release_s * fps))
        # Frames stay as long as an event can need them: its run and bridge plus k on each side, plus the lag;
        # or a slow release's wait, plus the k frames of its rise.
        self.history_frames = max(self.max_run + self.bridge + 3 * self.k, self.release + self.k) + 2
        self._frames: deque[_Frame] = deque(maxlen=self.history_frames)
        self._noise: deque[np.ndarray] = deque(maxlen=max(self.warmup, round(config.window_s * fps)))
        self.reset()

    def reset(self) -> None:
        self._frames.clear()
        self._motion: deque[_Motion] = deque(maxlen=self.history_frames)  # s of each frame, newest last
        self._run: list[_Scored] = []  # the open run's frames above threshold
        self._below = 0  # frames below threshold since the run's last frame above it
        self._dropping = False  # a run grew too long: wait for the score to fall before the next
        self._reported = False  # the open run's event was confirmed early: the run's end adds none
        self._candidate: tuple[int, tuple[int, int]] | None = None  # (peak, (onset, apex)) of the likely next event
        self._release: _Release | None = None  # a brief rise waiting for its face to come back
        self.region_motion = np.full(len(REGION_NAMES), np.nan)  # s of the latest frame, face widths
        self.score = float("nan")  # max z of the latest scored frame (k frames back)
        self.threshold = float("nan")  # inf during warm-up

    @property
    def warm(self) -> bool:
        """Has the noise history been long enough to set the threshold (once is enough: reset() keeps it)?
        Until then nothing can be reported."""
        return len(self._noise) >= self.warmup

    @property
    def warm_after_s(self) -> float:
        """Seconds of a face before the spotter is warm: the noise history, after the 2k frames c needs."""
        return (self.warmup + 2 * self.k) / self.fps

    def update(self, index: int, gray: np.ndarray, tracked: TrackedFace) -> Spot | None:
        """gray: the whole frame, H x W uint8. Returns an event when one is confirmed."""
        if self._frames and (self._frames[-1].index != index - 1 or self._frames[-1].tracked.track != tracked.track):
            self.reset()  # a gap or a new track: frame i-k is not k frames back on the same head
        self._frames.append(_Frame(index, gray, tracked))
        self.region_motion = np.full(len(REGION_NAMES), np.nan)
        if len(self._frames) <= self.k:
            return None
        motion = residual_motion(self._frames[-1 - self.k], self._frames[-1], _MEASURED)
        self.region_motion = region_motion(np.nan_to_num(motion[: len(REGION_POINTS)]))  # lost: not moved
        lids = np.nan_to_num(motion[len(REGION_POINTS):], nan=np.inf)  # a lid LK loses is closing
        s = np.append(self.region_motion, np.median(lids))
        warm = self.warm
        self.threshold = self.config.z if warm else float("inf")
        z_of = self._noise_scale() if warm else (lambda motion: np.zeros_like(motion))
        z_s = z_of(s[:-1])
        self._motion.append(_Motion(index, s, -np.inf if self._is_blink(s) else float(z_s.max()), int(np.argmax(z_s))))
        self._propose_raw()
        if len(self._motion) <= self.k:
            return None
        then = self._motion[-1 - self.k]  # frame j = i - k
        c = np.minimum(then.s, s)
        spot = self._score(then, c[:-1], z_of, blink=self._is_blink(c))
        return spot if spot is not None else self._released()

    def finish(self) -> list[Spot]:
        """The events that the stream's end would cut off, then reset(). An event is known k frames
        after its peak at the earliest, so a file that ends within that of an apex (as the databases'
        clips end at the offset) would lose it: the face is taken to stay as last seen, and the last
        frame is fed again until every frame is scored and the open run has ended. An offset past
        the last frame is the last frame."""
        spots = []
        last = self._frames[-1] if self._frames else None
        for held in range(self.history_frames if last else 0):
            spot = self.update(last.index + 1 + held, last.gray, last.tracked)
            if spot is not None:
                spots.append(replace(spot, offset=min(spot.offset, last.index)))
            if held >= self.k and not self._run:
                break
        self.reset()
        return spots

    def _is_blink(self, motion: np.ndarray) -> bool:
        """motion: per region, then the eyelids last."""
        return motion[-1] > self.config.blink_ratio * motion[:-1].max()

    def _noise_scale(self):
        """Per-region motion -> z against each region's noise history, less what all regions share
        (a misfit of the head's motion, not an expression, which is local)."""
        history = np.array(self._noise)  # frames x regions
        median = np.median(history, axis=0)
        sigma = np.maximum(1.4826 * np.median(np.abs(history - median), axis=0), 1e-9)

        def z_of(motion: np.ndarray) -> np.ndarray:
            z = (motion - median) / sigma
            return z - np.median(z)

        return z_of

    def _score(self, then: _Motion, c: np.ndarray, z_of, blink: bool) -> Spot | None:
        """Feed c_j per region (known k frames late, j = then.frame); returns a Spot when a short
        run's event is confirmed: early (_confirm_early), or when the run has ended."""
        z = z_of(c)
        self._noise.append(c)
        active = z.max() > self.threshold  # something on the face moves: the run goes on
        if active:  # an apex needs more: no blink, and its region on the way back by frame j+k
            z = np.zeros_like(z) if blink else np.where(self._returned(then.s[:-1]), z, 0.0)
        self.score = float(z.max())
        if active:
            self._below = 0
            if not self._dropping:
                self._run.append(_Scored(then, self.score, z))
                if self._run[-1].frame - self._run[0].frame >= self.max_run:
                    self._run, self._dropping = [], True  # talking, a held change: not a micro-expression
                    self._candidate, self._reported, self._release = None, False, None
                else:
                    self._propose()
                    return self._confirm_early()
            return None
        self._below += 1
        # After talking, the face must be still for a whole event's length before the next: one
        # syllable after a longer pause is talking too.
        if self._below < (self.max_run if self._dropping else self.bridge):
            self._propose()
            return None if self._dropping else self._confirm_early()
        self._dropping = False
        if not self._run:
            return None
        peak = self._peak()
        spot = None if peak is None or self._reported else self._spot(peak)
        if peak is None and self._release is None:
            rise = self._rise(z_of)
            self._release = None if rise is None or self._is_back(rise) else rise  # back already: not a slow release
        self._run, self._candidate, self._reported = [], None, False
        return spot

    def _rise(self, z_of) -> _Release | None:
        """The open run, which has no apex, as a brief rise that may be easing back slowly: its event,
        to wait release_s for the face to come back a third of the way. Micro-expressions often do
        (CAS(ME)^3's sheet: from apex to offset a median 0.47 s and over 0.5 s for 44 %, from onset to
        apex at most 0.27 s for 95 %): k frames after the apex the face has barely begun to return, so
        the return test passes no frame. What does not come back in time (a held smile, a light
        change) is no event. None for a run of blinks."""
        top = max(self._run, key=lambda f: f.motion.raw).motion
        if top.raw == -np.inf:  # blinks only
            return None
        onset, apex = self._bounds(top)
        z = z_of(top.s[:-1])
        reach = self._distance(top.region)(onset, apex)
        return _Release(onset, apex, top.region, reach, apex + self.release, float(z.max()), self._above(z))

    def _released(self) -> Spot | None:
        """The awaited rise's event, once its region is back `returned` of the way to the onset (the newest
        frame its offset); given up after its deadline."""
        rise = self._release
        if rise is None:
            return None
        if self._frames[-1].index > rise.deadline:
            self._release = None  # not back in time: a held change
            return None
        if not self._is_back(rise):
            return None
        self._release = None
        return Spot(rise.onset, rise.apex, self._frames[-1].index, rise.score, self.threshold, rise.regions)

    def _is_back(self, rise: _Release) -> bool:
        """Is the rise's region, in the newest frame, back `returned` of the way to the onset?"""
        away = self._distance(rise.region)(rise.onset, self._frames[-1].index)
        return away <= (1 - self.config.returned) * rise.reach

    def _peak(self) -> _Scored | None:
        """The open run's peak: of its frames that can be an apex (high c, on the way back by j+k, no
        blink), where the motion since k frames before (s) is highest. None while there is none."""
        valid = [f for f in self._run if f.score > self.threshold]
        return max(valid, key=lambda f: f.motion.raw, default=None)

    def _confirm_early(self) -> Spot | None:
        """The open run's event, as soon as its peak is scored (k frames after it, when its region is
        known to be back), if s peaked there and then fell to confirm_fall of the peak's within
        those k frames, as around a brief expression's apex, and the mouth's opening is not what
        moved most. A frame of higher s after the peak may be the apex until it is scored; once scored
        it is not (it would be the peak), and waiting on it let a larger motion that followed the
        expression (a spreading smile) run the event past max_event_s."""
        peak = self._peak()
        if self._reported or peak is None or REGION_NAMES[int(np.argmax(peak.z))] in SPEECH_REGIONS:
            return None
        region, top = peak.motion.region, peak.motion.s[peak.motion.region]
        scored = self._motion[-1 - self.k].frame  # frames up to this one have c: a higher s among them is no apex
        for m in (m for m in self._motion if peak.frame < m.frame <= peak.frame + self.k):
            if m.raw > peak.motion.raw and m.frame > scored:
                return None  # s was still rising, to a frame that may yet be the apex
            if m.s[region] <= self.config.confirm_fall * top:
                self._reported = True
                return self._spot(peak)
        return None

    @property
    def candidate(self) -> tuple[int, int] | None:
        """(onset, apex) of the likely next event, before it is confirmed; None when there is none."""
        return None if self._candidate is None else self._candidate[1]

    def _spot(self, peak: _Scored) -> Spot:
        # The candidate of this peak has its bounds already: the frames they rest on have not changed.
        known = self._candidate is not None and self._candidate[0] == peak.frame
        onset, apex = self._candidate[1] if known else self._bounds(peak.motion)
        offset = self._offset(apex, peak.frame, self._distance(peak.motion.region))
        return Spot(onset, apex, offset, peak.score, self.threshold, self._above(peak.z))

    def _above(self, z: np.ndarray) -> tuple[str, ...]:
        """The regions whose z is above threshold, most moved first: a Spot's regions."""
        return tuple(REGION_NAMES[r] for r in np.argsort(-z) if z[r] > self.threshold)

    def _propose_raw(self) -> None:
        """s peaks k frames before c can tell: once s has fallen from a peak above threshold (and no
        run is open), that frame is the candidate peak, so that the live app can start the event's
        recognition early. The run's peak is chosen on s too, so the two agree."""
        if len(self._motion) < 3 or self._dropping or self._reported or self._run:
            return
        before, peak, now = self._motion[-3], self._motion[-2], self._motion[-1]
        if before.raw <= peak.raw > max(now.raw, self.threshold) and (
                self._candidate is None or self._candidate[0] < peak.frame):
            self._candidate = peak.frame, self._bounds(peak)

    def _propose(self) -> None:
        """Once the open run's score has fallen from its peak so far, that peak is the likely one."""
        peak = self._peak()
        if peak is None or self._reported:
            return
        if self._run[-1].frame != peak.frame or self._below:  # fallen, within the run or below threshold
            if self._candidate is None or self._candidate[0] != peak.frame:
                self._candidate = peak.frame, self._bounds(peak.motion)

    def _returned(self, ab: np.ndarray) -> np.ndarray:
        """Per region: by frame j+k (the newest), is it back at least `returned` of the way from frame
        j to frame j-k (2k back), as after a brief expression's apex? Its distance from frame j-k must
        be at most 1 - returned of frame j's (ab, s_j). A drift or a slow release goes on, and a face
        that moves elsewhere moves away; a real face often stops part of the way back."""
        before, after = self._frames[-1 - 2 * self.k], self._frames[-1]  # frames j-k and j+k: no gaps in history
        ac = region_motion(np.nan_to_num(residual_motion(before, after, REGION_POINTS)))
        return ac <= (1 - self.config.returned) * ab

    def _bounds(self, peak: _Motion) -> tuple[int, int]:
        """(onset, apex) of the event whose run peaked at `peak`. The apex is the first frame after
        the onset whose motion from it reaches apex_fraction of the peak's: the peak itself for a
        brief expression, the start of the hold for a held one. A held expression's peak lies late
        in its hold, so its onset is found again from the apex: the k frames before the peak may all
        be inside its rise."""
        distance = self._distance(peak.region)
        onset = self._onset(peak.frame, distance)
        bar = self.config.apex_fraction * distance(onset, peak.frame)
        apex = next((j for j in range(onset + 1, peak.frame) if distance(onset, j) >= bar), peak.frame)
        return (onset if apex == peak.frame else self._onset(apex, distance)), apex

    def _distance(self, region: int):
        """(frame index a, frame index b) -> median motion of the region's landmarks from a to b."""
        frames = {f.index: f for f in self._frames}
        points = REGION_POINTS[REGION_OF_POINT == region]
        return lambda a, b: float(np.nanmedian(residual_motion(frames[a], frames[b], points)))

    def _last_neutral(self, motion, candidates: range, side: int) -> int:
        """The first of `candidates` (walking back from the apex) whose motion to the apex is at
        least bound_fraction of `side`'s: where the expression has not yet begun."""
        bar = self.config.bound_fraction * motion(side)
        return next((j for j in candidates if motion(j) >= bar), side)

    def _onset(self, apex: int, distance) -> int:
        """In [apex-k, apex), by `distance` (_distance of a region). It needs no frame after the apex,
        so the onset is known as soon as the apex is (the live app's early start relies on it)."""
        return self._last_neutral(lambda j: distance(j, apex), range(apex - 1, apex - self.k, -1), apex - self.k)

    def _offset(self, apex: int, peak: int, distance) -> int:
        """After the peak, up to 2k later or the newest frame (an expression may fall more slowly than
        it rose), by `distance` (_distance of a region) from the apex: where the way back, the last
        stretch of frames at least half as far from the apex as the window's end, reaches
        bound_fraction of that. A held expression is held from its apex to its peak, where it begins
        to go back; confirmed early, it may have barely begun, and noise in the hold, below half,
        is not its way back; nor is noise once the face is back (a search from the end for the
        bar itself stopped there)."""
        end = min(self._frames[-1].index, peak + 2 * self.k)
        away = [distance(j, apex) for j in range(peak + 1, end + 1)]
        first = len(away) - 1
        while first > 0 and away[first - 1] >= 0.5 * away[-1]:
            first -= 1
        reached = next(i for i in range(first, len(away)) if away[i] >= self.config.bound_fraction * away[-1])
        return peak + 1 + reached
