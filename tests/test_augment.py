"""Flow-aware augmentation: a flipped input is the input of flipped frames, a rotation turns the
(u, v) vectors with the maps, mixup keeps the dominant label, and the draws are per fold."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from epir_core.preprocess import FarnebackParams, InputRecipe, compute_flow, flow_to_input
from epir_core.preprocess.synthetic import Warp, synthetic_pair, warp_image
from epir_core.model.mirror import hflip
from train.augment import Augmenter, restretch, rotate

FACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_composite" / "apex_face_224" / "006_006_1_2.jpg"
RECIPE = InputRecipe.composite()


def _two_bumps(size: int = 140) -> np.ndarray:
    """A raw flow field whose u and v are not proportional (a rightward bump left, an upward one
    right) and span equal ranges, size x size x 2 pixels."""
    return Warp(cx=0.3, cy=0.45, dx=1.5, dy=0.0, sigma=0.1).field(size, size) + Warp(cx=0.7, cy=0.6, dx=0.0, dy=-1.5, sigma=0.1).field(size, size)


def _model_input(flow: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(flow_to_input(flow, RECIPE))


def test_flip_of_an_input_is_the_input_of_the_mirrored_flow():
    flow = _two_bumps()
    mirrored = np.ascontiguousarray(flow[:, ::-1] * np.array([-1, 1], np.float32))  # (-u, v) mirrored
    expected = _model_input(mirrored)
    got = hflip(_model_input(flow))
    # u and v: exact (8-bit quantisation of 1 - x could round a tie the other way: one level)
    assert (got[:2] - expected[:2]).abs().max() <= 1 / 255 + 1e-6
    # strain: mirrored forward differences are backward differences, a one-pixel shift at 140 px
    assert (got[2] - expected[2]).abs().mean() < 0.01


@pytest.mark.skipif(not FACE.exists(), reason="real face image not found")
def test_flip_of_an_input_matches_the_flow_of_mirrored_frames():
    face = cv2.resize(cv2.cvtColor(cv2.imread(str(FACE)), cv2.COLOR_BGR2GRAY), (RECIPE.crop_width, RECIPE.crop_height))
    onset, apex = synthetic_pair(face, Warp(cx=0.3, cy=0.7, dx=2.0, dy=-1.5, sigma=0.1), np.random.default_rng(0), noise=0.5, jitter=0.0)
    params = FarnebackParams()
    original = _model_input(compute_flow(onset, apex, params))
    of_mirrored_frames = _model_input(compute_flow(onset[:, ::-1].copy(), apex[:, ::-1].copy(), params))
    right = (hflip(original) - of_mirrored_frames).abs().mean(dim=(1, 2))
    naive = (original.flip(-1) - of_mirrored_frames).abs().mean(dim=(1, 2))  # mirroring without negating u
    assert right.max() < 0.06  # the flow algorithm itself is not exactly mirror-symmetric
    assert naive[0] > 4 * right[0]  # u is where the sign matters


def _rotate_raw(flow: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a raw flow field as the frames would be: maps turned, vectors turned with them."""
    h, w = flow.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    maps = cv2.warpAffine(flow, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (maps @ m[:, :2].T).astype(np.float32)  # (u, v) -> R (u, v)


def test_rotation_turns_the_vectors_with_the_maps():
    flow = _two_bumps()
    for degrees in (-30.0, 20.0):
        expected = _model_input(_rotate_raw(flow, degrees))
        got = rotate(_model_input(flow)[None], torch.tensor([degrees]))[0]
        wrong = rotate(_model_input(flow)[None], torch.tensor([-degrees]))[0]  # maps and vectors the other way
        error = (got - expected).abs().mean(dim=(1, 2))
        assert error.max() < 0.03
        assert (wrong - expected).abs().mean() > 3 * error.mean()


@pytest.mark.parametrize("degrees", [90.0, 180.0, -90.0])
def test_a_radial_flow_is_unchanged_by_quarter_turns_about_its_centre(degrees):
    # (u, v) = p - centre turns into itself: its maps move, and its vectors turn exactly as much.
    # Turning the maps alone (without the vectors) would change it.
    ys, xs = np.mgrid[0:28, 0:28].astype(np.float32)
    x = torch.from_numpy(np.stack([xs / 27, ys / 27, np.hypot(xs - 13.5, ys - 13.5) / 19.1]))[None]
    torch.testing.assert_close(rotate(x, torch.tensor([degrees])), restretch(x), atol=1e-4, rtol=0)
    maps_only = torch.rot90(x[0, :2], k=int(degrees // 90), dims=(1, 2))
    assert (maps_only - x[0, :2]).abs().max() > 0.5


def test_restretch_spans_zero_to_one_and_zeroes_constant_maps():
    x = torch.stack([torch.rand(28, 28) * 0.3 + 0.2, torch.full((28, 28), 0.7), torch.rand(28, 28)])
    y = restretch(x)
    assert y[0].min() == 0 and y[0].max() == 1 and y[1].abs().max() == 0


def test_mixup_keeps_the_dominant_label_and_mixes_targets_alike():
    aug = Augmenter(flip=False, rotate_degrees=0, mixup_alpha=0.4, fold_seeds=[1, 2])
    chunks = [np.arange(5), np.arange(3)]  # the second fold's batch is padded to 5 rows
    d = aug.draw(chunks, 5, torch.device("cpu"))
    assert (d.lam >= 0.5).all() and (d.lam[1, 3:] == 1).all() and d.partner[1, 3:].tolist() == [3, 4]
    assert sorted(d.partner[0].tolist()) == list(range(5)) and d.partner[1, :3].max() < 3  # partners from the fold's own rows
    x = torch.rand(2, 5, 3, 28, 28)
    targets = torch.eye(3)[torch.tensor([[0, 1, 2, 0, 1], [2, 2, 0, 0, 0]])]
    _, mixed = aug.apply(x, targets, d)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(2, 5))
    own = (mixed * targets).sum(-1)
    assert (own >= 0.5 - 1e-6).all()


def test_draws_depend_on_the_fold_not_on_its_group():
    alone = Augmenter(True, 10.0, 0.2, fold_seeds=[7]).draw([np.arange(4)], 4, torch.device("cpu"))
    grouped = Augmenter(True, 10.0, 0.2, fold_seeds=[3, 7]).draw([np.arange(6), np.arange(4)], 6, torch.device("cpu"))
    for field in ("flip", "degrees", "partner", "lam"):
        torch.testing.assert_close(getattr(grouped, field)[1, :4], getattr(alone, field)[0])
