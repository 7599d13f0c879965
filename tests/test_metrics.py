"""UF1 / UAR (paper Eq. 24-27) against hand-computed cases."""

import numpy as np
import pytest

from epir_core.metrics import confusion_matrix, per_class_f1, per_class_recall, uar, uf1


def test_confusion_matrix_counts_rows_true_columns_predicted():
    cm = confusion_matrix(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]), 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_uf1_and_uar_match_hand_computation():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 2, 2])
    # F1: 2*2/(4+0+1) = 0.8, 2*1/(2+1+1) = 0.5, 2*1/(2+1+0) = 2/3; recall: 2/3, 1/2, 1/1
    assert uf1(y, p, 3) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert uar(y, p, 3) == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)


def test_class_absent_from_ground_truth_is_left_out_of_both_means():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])  # one prediction of the absent class 2: a false negative of class 0
    cm = confusion_matrix(y, p, 3)
    assert np.isnan(per_class_f1(cm)[2]) and np.isnan(per_class_recall(cm)[2])
    # classes 0 and 1 only: F1 = 2/3 and 1, recall = 1/2 and 1
    assert uf1(y, p, 3) == pytest.approx((2 / 3 + 1.0) / 2)
    assert uar(y, p, 3) == pytest.approx((0.5 + 1.0) / 2)


def test_single_sample_fold_and_perfect_predictions():
    assert uf1(np.array([2]), np.array([2]), 3) == 1.0
    assert uar(np.array([2]), np.array([0]), 3) == 0.0
    y = np.array([0, 1, 2, 2])
    assert uf1(y, y, 3) == uar(y, y, 3) == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="empty"):
        uf1(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 3)
    with pytest.raises(ValueError, match="outside"):
        uar(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)
