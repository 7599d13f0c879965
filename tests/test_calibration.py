"""Calibration: ECE on known values, a temperature fit that recovers a known temperature, and
checkpoints that carry (or lack) one."""

import numpy as np
import pytest
import torch

from epir_core import build_model
from epir_core.calibration import calibrated_probabilities, checkpoint_temperature
from epir_core.checkpoint import load_checkpoint, save_checkpoint
from epir_core.errors import CheckpointError
from epir_core.preprocess.recipe import InputRecipe
from train.calibration import expected_calibration_error, fit_temperature, nll, reliability_bins


def test_ece_of_known_predictions():
    # 10 predictions at confidence 0.9 (bin 13 of 0..14), 7 right: gap 0.2; 10 at 0.6 (bin 8), 6 right: gap 0
    probs = np.array([[0.9, 0.05, 0.05]] * 10 + [[0.6, 0.3, 0.1]] * 10)
    labels = np.array([0] * 7 + [1] * 3 + [0] * 6 + [2] * 4)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.2 + 0.5 * 0.0)
    bins = reliability_bins(probs, labels)
    assert len(bins) == 15 and [b["count"] for b in bins if b["count"]] == [10, 10]
    assert bins[13]["accuracy"] == pytest.approx(0.7) and bins[8]["count"] == 10  # bins are (lo, hi]: 0.6 is in (8/15, 9/15]
    perfect = np.array([[1.0, 0.0, 0.0]] * 4)
    assert expected_calibration_error(perfect, np.zeros(4, dtype=int)) == 0


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_temperature_fit_recovers_a_known_temperature(true_temperature):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(20000, 3))  # the true logits
    cumulative = np.cumsum(calibrated_probabilities(z), axis=1)
    labels = (rng.random(len(z))[:, None] > cumulative).sum(1)  # labels drawn from softmax(z)
    logits = z * true_temperature  # a model over- (T > 1) or under-confident (T < 1) by that factor
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    assert nll(logits, labels, fitted) <= nll(logits, labels, 1.0) + 1e-12
    raw = expected_calibration_error(calibrated_probabilities(logits), labels)
    assert expected_calibration_error(calibrated_probabilities(logits, fitted), labels) < 0.02
    if true_temperature != 1.0:
        assert raw > 0.05


def test_calibration_changes_confidence_never_the_prediction():
    logits = np.random.default_rng(1).normal(0, 3, size=(50, 3))
    for t in (0.3, 2.0, 10.0):
        p = calibrated_probabilities(logits, t)
        np.testing.assert_allclose(p.sum(1), 1)
        assert (p.argmax(1) == logits.argmax(1)).all()
    assert calibrated_probabilities(logits, 10.0).max(1).mean() < calibrated_probabilities(logits).max(1).mean()


def _save(tmp_path, meta):
    torch.manual_seed(0)
    model = build_model("epir", num_classes=3, dim=32, dim_head=8, mlp_dim=64).eval()
    return save_checkpoint(tmp_path / "m.pt", model, ("negative", "positive", "surprise"), InputRecipe.composite(), meta)


def test_a_checkpoint_without_a_temperature_loads_with_t_1(tmp_path):
    ckpt = load_checkpoint(_save(tmp_path, {"trained_by": "train.fit"}))  # as every checkpoint before calibration
    assert ckpt.temperature == 1.0 and checkpoint_temperature({}) == 1.0


def test_a_checkpoint_carries_its_temperature(tmp_path):
    ckpt = load_checkpoint(_save(tmp_path, {"calibration": {"temperature": 2.5, "how": "test"}}))
    assert ckpt.temperature == 2.5
    logits = ckpt.model(torch.rand(2, 3, 28, 28)).detach().numpy()
    np.testing.assert_allclose(calibrated_probabilities(logits, ckpt.temperature), calibrated_probabilities(logits / 2.5))


@pytest.mark.parametrize("bad", [{"temperature": 0}, {"temperature": -1.0}, {"temperature": "hot"}, "T=2"])
def test_a_bad_temperature_is_a_checkpoint_error(tmp_path, bad):
    with pytest.raises(CheckpointError, match="m.pt"):
        load_checkpoint(_save(tmp_path, {"calibration": bad}))
