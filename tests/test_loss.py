"""The loss of Eqs. 22-23 against direct double loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from epir_core.loss import contrastive_loss, epir_loss


def _double_loop(feats, labels, margin):
    z = F.normalize(feats.double(), dim=-1)
    B = len(labels)
    total = 0.0
    for i in range(B):
        for j in range(B):
            s = float(z[i] @ z[j])
            total += (1 - s) if labels[i] == labels[j] else max(s - margin, 0.0)
    return total / B**2


@pytest.mark.parametrize("B", [1, 2, 5, 9])
@pytest.mark.parametrize("margin", [0.0, 0.4, 0.8])
def test_contrastive_loss_equals_double_loop(B, margin):
    torch.manual_seed(B)
    feats, labels = torch.randn(B, 16), torch.randint(0, 3, (B,))
    assert contrastive_loss(feats, labels, margin) == pytest.approx(_double_loop(feats, labels, margin), abs=1e-6)


def test_valid_mask_drops_padded_rows():
    torch.manual_seed(1)
    feats, labels = torch.randn(8, 16), torch.randint(0, 3, (8,))
    valid = torch.tensor([1, 1, 0, 1, 0, 1, 1, 0], dtype=torch.bool)
    expected = _double_loop(feats[valid], labels[valid], 0.4)
    assert contrastive_loss(feats, labels, 0.4, valid) == pytest.approx(expected, abs=1e-6)
    assert float(contrastive_loss(feats, labels, 0.4, torch.zeros(8, dtype=torch.bool))) == 0.0


def test_total_loss_is_ce_plus_contrastive_over_valid_rows():
    torch.manual_seed(2)
    logits, feats = torch.randn(6, 3), torch.randn(6, 16)
    labels = torch.tensor([0, 1, 2, 1, -1, -1])  # padded rows may carry any label
    valid = labels >= 0
    ce = F.cross_entropy(logits[valid], labels[valid])
    con = _double_loop(feats[valid], labels[valid], 0.4)
    total = epir_loss(logits, feats, labels, valid=valid)
    assert total == pytest.approx(float(ce) + con, abs=1e-6)
    ce_only = epir_loss(logits, feats, labels, valid=valid, contrastive_weight=0.0)
    assert ce_only == pytest.approx(float(ce), abs=1e-6)


def test_loss_gradient_reaches_features_and_logits():
    logits = torch.randn(4, 3, requires_grad=True)
    feats = torch.randn(4, 8, requires_grad=True)
    epir_loss(logits, feats, torch.tensor([0, 0, 1, 2])).backward()
    assert logits.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0


def test_soft_targets_replace_the_one_hot_labels_in_ce_only():
    torch.manual_seed(3)
    logits, feats = torch.randn(5, 3), torch.randn(5, 16)
    labels = torch.tensor([0, 1, 2, 1, 0])
    one_hot = F.one_hot(labels, 3).float()
    assert epir_loss(logits, feats, labels, targets=one_hot) == pytest.approx(float(epir_loss(logits, feats, labels)), abs=1e-6)
    smoothed = one_hot * 0.9 + 0.1 / 3
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1) + _double_loop(feats, labels, 0.4)
    assert epir_loss(logits, feats, labels, targets=smoothed) == pytest.approx(float(expected), abs=1e-6)
    weights = torch.tensor([0.5, 2.0, 1.0])  # class weights scale a row's target
    expected = (F.cross_entropy(logits, labels, reduction="none") * weights[labels]).mean()
    assert epir_loss(logits, feats, labels, contrastive_weight=0.0, targets=one_hot * weights) == pytest.approx(float(expected), abs=1e-6)
